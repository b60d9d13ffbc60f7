from polymodal.cli import run

run()
