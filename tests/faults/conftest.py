"""The people of every workbench test, for the fault tests."""

from __future__ import annotations

from tests.workbench import conftest as people

_fast_and_isolated = people._fast_and_isolated
make_user = people.make_user
alice, bob, vera, charlie = people.alice, people.bob, people.vera, people.charlie
workspace = people.workspace
alice_client, bob_client = people.alice_client, people.bob_client
