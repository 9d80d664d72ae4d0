import sys

from swapprof.server.generation._main import main

sys.exit(main())
