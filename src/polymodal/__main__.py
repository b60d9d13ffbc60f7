from polymodal.cli import main

raise SystemExit(main())
