from textsae.cli.main import main

raise SystemExit(main())
