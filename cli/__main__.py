from wolfpack.cli import main

main()
