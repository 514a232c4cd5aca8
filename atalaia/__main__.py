from atalaia.cli import main

raise SystemExit(main())
