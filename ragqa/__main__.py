from ragqa.cli import app

app(prog_name="ragqa")
