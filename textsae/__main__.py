from textsae.cli.main import console

raise SystemExit(console())
