"""Feedback HTML checks for the exercise tests (``test_exercise_03.py``, ``…_04.py``)."""

from __future__ import annotations

from exercise_helpers import hidden_lines


def check_feedback_html(course, assignment, mistakes) -> None:
    """The diagnosis is shown; hidden-test source and tracebacks are not. (The page's CSS
    names pygments' "Generic.Traceback" class, so the marker is Python's traceback header.)"""
    for mistake in mistakes:
        html = (course / "feedback" / mistake.name / assignment / f"{assignment}.html"
                ).read_text().replace("&#39;", "'").replace("&quot;", '"')
        if mistake.loses:
            assert mistake.feedback in html, f"feedback of {mistake.name} lacks the diagnosis"
        for line in hidden_lines(assignment):
            assert line not in html, f"feedback shows hidden test source: {line}"
        assert "BEGIN HIDDEN TESTS" not in html
        assert "Traceback (most recent call last)" not in html and "----> " not in html
