"""The chaos run in its short form (``nox -s faults`` runs the full one)."""

from tests.faults import chaos


def test_short_chaos_run_loses_nothing(capsys):
    ok = chaos.run(chaos.parser().parse_args(["--jobs", "300", "--seconds", "20", "--kills", "3", "--settle", "180"]))
    printed = capsys.readouterr().out
    assert "lost:             0" in printed and "completed twice:  0" in printed, printed
    assert ok, printed
