from edgescreen.cli import main

raise SystemExit(main())
