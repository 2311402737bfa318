from spmkit.cli.app import main

main()
