-- Dashboard views of the seed ("Dashboards de Monitoramento", "Métricas e KPIs"). Each block
-- is "VIEW <name>" then its SELECT. FINAL: re-delivered rows count once.

VIEW transactions_per_minute
SELECT toStartOfMinute(event_occurred_at) AS minute, event_kind, count() AS analysed
FROM decisions FINAL GROUP BY minute, event_kind ORDER BY minute, event_kind;

VIEW decision_mix
SELECT event_kind, decision, count() AS decisions
FROM decisions FINAL GROUP BY event_kind, decision ORDER BY event_kind, decision;

VIEW fraud_rate_daily
SELECT toDate(event_occurred_at) AS day, count() AS decided,
       countIf(event_id IN (SELECT arrayJoin(event_ids) FROM labels FINAL WHERE is_fraud)) AS confirmed_fraud,
       confirmed_fraud / decided AS fraud_rate
FROM decisions FINAL GROUP BY day ORDER BY day;

VIEW false_positive_rate
SELECT countIf(outcome = 'legitimate') AS legitimate, countIf(outcome = 'fraud_confirmed') AS fraud,
       if(legitimate + fraud = 0, 0, legitimate / (legitimate + fraud)) AS false_positive_rate
FROM cases FINAL WHERE status = 'closed';

VIEW latency_quantiles
SELECT toStartOfHour(decided_at) AS hour, count() AS decisions,
       quantile(0.5)(latency_ms) AS p50_ms, quantile(0.99)(latency_ms) AS p99_ms
FROM decisions FINAL GROUP BY hour ORDER BY hour;

VIEW blacklist_hits_per_hour
SELECT toStartOfHour(event_occurred_at) AS hour, countIf(has(reason_codes, 'BLACKLIST_LIST_HIT')) AS hits
FROM decisions FINAL GROUP BY hour ORDER BY hour;

VIEW top_reasons
SELECT reason, count() AS decisions
FROM decisions FINAL ARRAY JOIN reason_codes AS reason GROUP BY reason ORDER BY decisions DESC, reason;

VIEW active_cases
SELECT priority, status, count() AS cases
FROM cases FINAL WHERE status != 'closed' GROUP BY priority, status ORDER BY priority, status;

VIEW amount_blocked_daily
SELECT toDate(d.event_occurred_at) AS day, sum(e.amount_cents) AS amount_blocked_cents, count() AS blocked
FROM (SELECT event_id, event_occurred_at FROM decisions FINAL WHERE decision = 'BLOCK') AS d
INNER JOIN (SELECT event_id, amount_cents FROM events FINAL WHERE amount_cents IS NOT NULL) AS e USING event_id
GROUP BY day ORDER BY day;

VIEW geo_distribution
SELECT ifNull(e.country, '??') AS country, d.decision AS decision, count() AS decisions
FROM (SELECT event_id, decision FROM decisions FINAL) AS d
INNER JOIN (SELECT event_id, country FROM events FINAL) AS e USING event_id
GROUP BY country, decision ORDER BY country, decision;

VIEW score_distribution
SELECT intDiv(score, 10) * 10 AS score_from, count() AS decisions
FROM decisions FINAL GROUP BY score_from ORDER BY score_from;

-- Champion vs challenger scored in shadow: agreement, and precision/recall of flagging
-- (REVIEW or BLOCK) on the events that have a label.
VIEW shadow_comparison
SELECT champion_version, challenger_version, count() AS events,
       countIf(champion_decision = challenger_decision) AS agree, agree / events AS agreement,
       countIf(labelled = 1) AS labelled_events, countIf(is_fraud = 1) AS frauds,
       countIf(labelled = 1 AND champion_decision != 'ALLOW' AND is_fraud = 1) AS champion_tp,
       countIf(labelled = 1 AND champion_decision != 'ALLOW' AND is_fraud = 0) AS champion_fp,
       countIf(labelled = 1 AND challenger_decision != 'ALLOW' AND is_fraud = 1) AS challenger_tp,
       countIf(labelled = 1 AND challenger_decision != 'ALLOW' AND is_fraud = 0) AS challenger_fp,
       champion_tp / nullIf(champion_tp + champion_fp, 0) AS champion_precision,
       champion_tp / nullIf(frauds, 0) AS champion_recall,
       challenger_tp / nullIf(challenger_tp + challenger_fp, 0) AS challenger_precision,
       challenger_tp / nullIf(frauds, 0) AS challenger_recall
FROM shadow_decisions FINAL
LEFT JOIN (SELECT arrayJoin(event_ids) AS event_id, toUInt8(max(is_fraud)) AS is_fraud, toUInt8(1) AS labelled
           FROM labels FINAL GROUP BY event_id) AS outcomes USING event_id
GROUP BY champion_version, challenger_version ORDER BY champion_version, challenger_version;
