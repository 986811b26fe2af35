from ._loop import main

main()
