"""Money display. Amounts are integer centavos everywhere; this only formats them."""


def format_brl(cents: int) -> str:
    """Brazilian display of centavos: 123456 -> 'R$ 1.234,56'.

    >>> format_brl(100_000)
    'R$ 1.000,00'
    >>> format_brl(5)
    'R$ 0,05'
    """
    reais, centavos = divmod(cents, 100)
    return f"R$ {reais:,}".replace(",", ".") + f",{centavos:02d}"
