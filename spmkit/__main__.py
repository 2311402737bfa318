from spmkit.cli.app import run

run()
