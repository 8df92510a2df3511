"""The stakeholder report (stage `report`): one offline HTML page and its JSON twin.

`stats` (intervals), `model` (the typed JSON twin), `analysis` (figures from scores and labels),
`history` (the previous release, from Git), `svg` (hand-written plots) and `render` (HTML from
the twin only, so every number on the page is one of the twin's).
"""
