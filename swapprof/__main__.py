from swapprof.cli import main

raise SystemExit(main())
