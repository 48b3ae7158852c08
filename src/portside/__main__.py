from portside.cli import main

main()
