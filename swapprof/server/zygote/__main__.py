from swapprof.server.generation._leave import run_then_leave
from swapprof.server.zygote._main import main

run_then_leave(main)
