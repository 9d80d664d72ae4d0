from swapprof.server.zygote._main import main

raise SystemExit(main())
