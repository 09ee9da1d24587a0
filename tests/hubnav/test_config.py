"""The hub's configuration loads Flightbase's page.html (the nav bar's "Flightbase" entry) in
every deployment (configure_servers: the embedded one and Kubernetes), and that override extends
the hub's own page.html rather than replacing it (tests/hubnav/test_hub_nav.py renders it for real)."""

from __future__ import annotations

from pathlib import Path

import jinja2
from traitlets.config import Config

from flightbase_server.hub.config import TEMPLATES, configure_servers


def test_every_deployment_loads_the_override():
    c = Config()
    configure_servers(c)
    assert c.JupyterHub.template_paths == [str(TEMPLATES)]
    assert (Path(TEMPLATES) / "page.html").is_file()


def test_the_override_extends_the_hubs_page_and_keeps_its_entries():
    source = (Path(TEMPLATES) / "page.html").read_text()
    ast = jinja2.Environment().parse(source)
    extends = list(ast.find_all(jinja2.nodes.Extends))
    assert [e.template.value for e in extends] == ["templates/page.html"]  # the hub's own, by its prefix
    blocks = {b.name: b for b in ast.find_all(jinja2.nodes.Block)}
    assert set(blocks) == {"nav_bar_left_items"}
    # the hub's Home, Token, Admin and Services entries stay: the block starts with super()
    first = blocks["nav_bar_left_items"].body[0]
    calls = [n for n in first.find_all(jinja2.nodes.Call) if isinstance(n.node, jinja2.nodes.Name)]
    assert calls and calls[0].node.name == "super"
