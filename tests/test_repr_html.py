"""The HTML summary of an experiment shown by Jupyter."""

from __future__ import annotations

from daskperiment import Experiment


def test_summary_of_a_new_experiment(ex: Experiment) -> None:
    html = ex._repr_html_()
    assert f"<b>Experiment</b> {ex.id}" in html
    assert "last trial id 0" in html
    assert "<td colspan='2'>(none)</td>" in html
    assert "No trial yet." in html


def test_parameters_and_last_five_trials(ex: Experiment) -> None:
    a = ex.parameter("a")
    ex.parameter("b", default=2)

    @ex.result
    def double(a):
        return 2 * a

    for value in range(7):
        ex.set_parameters(a=value)
        double(a).compute(seed=0)
    html = ex._repr_html_()
    assert "last trial id 7" in html
    assert "<tr><td>a</td><td>6</td></tr><tr><td>b</td><td>2</td></tr>" in html
    rows = html.split("<tbody>")[1]
    assert [f"<th>{t}</th>" in rows for t in range(1, 8)] == [False, False] + [True] * 5


def test_user_text_is_escaped(ex: Experiment) -> None:
    name = ex.parameter("name")

    @ex.result
    def echo(name):
        return name

    ex.set_parameters(name="<script>alert('x')</script>")
    echo(name).compute(seed=0)
    html = ex._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
