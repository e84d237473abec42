"""Every page route and every REST operation, found by walking the URL conf and the OpenAPI spec,
with who may use it. A route missing from these tables fails the tests that read them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

from tests.security.conftest import World

# Rules: a workspace role ("viewer" … "owner": outsiders 404, lower roles 403), "public"
# (anyone), "login" (any logged-in user), "token" (a bearer token; sessions get 401), "staff"
# (the admin site), or None: the method is not allowed (405 once access is granted).
VIEWER, MEMBER, ADMIN, OWNER = "viewer", "member", "admin", "owner"
PUBLIC, LOGIN, TOKEN, STAFF = "public", "login", "token", "staff"
HEALTH = "health"  # public, and 503 while a part of the stack is down
# Below admin, someone else's object is not found (404) rather than forbidden.
ADMIN_OR_HIDDEN = "admin-or-hidden"

# What a POST needs beyond an empty body to reach the view's own logic, and query strings.
POST_DATA: dict[str, dict[str, str]] = {"curation:copy": {"workspace": "{ws}"}}
QUERY: dict[str, str] = {"runs:part_html": "?key=m1/0"}

# URL name -> (GET rule, POST rule)
PAGES: dict[str, tuple[str | None, str | None]] = {
    "home": (LOGIN, LOGIN),
    "healthz": (HEALTH, HEALTH),
    # accounts
    "accounts:login": (PUBLIC, PUBLIC),
    "accounts:logout": (None, PUBLIC),
    "accounts:signup": (PUBLIC, PUBLIC),
    "accounts:account_settings": (LOGIN, LOGIN),
    "accounts:password_change": (LOGIN, LOGIN),
    "accounts:password_reset": (PUBLIC, PUBLIC),
    "accounts:password_reset_done": (PUBLIC, PUBLIC),
    "accounts:password_reset_confirm": (PUBLIC, PUBLIC),
    "accounts:password_reset_complete": (PUBLIC, PUBLIC),
    "accounts:workspace_list": (LOGIN, None),
    "accounts:workspace_create": (LOGIN, LOGIN),
    "accounts:workspace_home": (VIEWER, None),
    "accounts:workspace_settings": (ADMIN, ADMIN),
    "accounts:workspace_delete": (None, OWNER),
    "accounts:workspace_members": (VIEWER, None),
    "accounts:membership_role": (None, ADMIN),
    "accounts:membership_remove": (None, ADMIN),
    "accounts:membership_leave": (None, VIEWER),
    "accounts:invitation_create": (None, ADMIN),
    "accounts:invitation_revoke": (None, ADMIN),
    "accounts:invitation_accept": (PUBLIC, LOGIN),
    # keys
    "keys:index": (VIEWER, MEMBER),
    "keys:detail": (VIEWER, ADMIN),  # editing a workspace credential
    "keys:test": (None, MEMBER),
    "keys:delete": (None, ADMIN),  # a workspace credential
    "keys:refresh": (None, MEMBER),
    "keys:model_add": (None, MEMBER),
    "keys:model_remove": (None, MEMBER),
    # pools
    "pools:index": (VIEWER, None),
    "pools:create": (MEMBER, MEMBER),
    "pools:detail": (VIEWER, None),
    "pools:edit": (MEMBER, MEMBER),
    "pools:clone": (None, MEMBER),
    "pools:delete": (None, ADMIN),  # another member's pool
    # runs
    "runs:list": (VIEWER, None),
    "runs:index": (VIEWER, None),
    "runs:new": (MEMBER, MEMBER),
    "runs:estimate": (None, MEMBER),
    "runs:detail": (VIEWER, None),
    "runs:panels": (VIEWER, None),
    "runs:part_html": (VIEWER, None),
    "runs:cancel": (None, MEMBER),
    "runs:rerun": (None, MEMBER),
    # curation
    "curation:panel": (VIEWER, None),
    "curation:judgment": (None, MEMBER),
    "curation:tags": (None, MEMBER),
    "curation:flag": (None, MEMBER),
    "curation:comment": (None, VIEWER),
    "curation:share_create": (None, MEMBER),
    "curation:share_revoke": (None, MEMBER),
    "curation:copy": (None, MEMBER),
    "curation:export": (VIEWER, None),
    "curation:review": (VIEWER, None),
    "curation:review_next": (MEMBER, None),
    "curation:leaderboard": (VIEWER, None),
    "curation:share": (PUBLIC, None),
    "judges:index": (VIEWER, None),
    # experiments
    "experiments:index": (VIEWER, None),
    "experiments:new": (MEMBER, MEMBER),
    "experiments:detail": (VIEWER, None),
    "experiments:live": (VIEWER, None),
    "experiments:pause": (None, MEMBER),
    "experiments:resume": (None, MEMBER),
    "experiments:cancel": (None, MEMBER),
    "experiments:delete": (None, MEMBER),
    "experiments:grading": (VIEWER, None),
    "experiments:item_grade": (None, MEMBER),
    "experiments:export_csv": (VIEWER, None),
    "experiments:export_json": (VIEWER, None),
    "experiments:dataset_upload": (MEMBER, MEMBER),
    "experiments:dataset_sample": (None, MEMBER),
    "experiments:dataset_gold": (None, MEMBER),
    "experiments:dataset_detail": (VIEWER, None),
    "experiments:dataset_delete": (None, MEMBER),
    # gateway, tokens, usage
    "gateway:models": (TOKEN, None),
    "gateway:chat": (None, TOKEN),
    "gateway:anthropic_messages": (None, TOKEN),
    "tokens:index": (VIEWER, VIEWER),
    "tokens:revoke": (None, ADMIN_OR_HIDDEN),  # others' tokens are invisible below admin
    "usage:index": (VIEWER, None),
    "usage:budget": (None, ADMIN),
    "usage:member_budget": (None, ADMIN),
    "usage:metrics": (TOKEN, None),
}

# REST operation id -> minimum role (the API's own auth: no session or token is a 401).
API: dict[str, str] = {
    "workbench_keys_api_list_credentials": VIEWER,
    "workbench_keys_api_create_credential": MEMBER,
    "workbench_keys_api_read_credential": VIEWER,
    "workbench_keys_api_update_credential": ADMIN,  # a workspace credential
    "workbench_keys_api_delete_credential": ADMIN,
    "workbench_keys_api_test_credential": MEMBER,
    "workbench_keys_api_list_models": VIEWER,
    "workbench_keys_api_add_model": MEMBER,
    "workbench_pools_api_list_pools": VIEWER,
    "workbench_pools_api_create_pool": MEMBER,
    "workbench_pools_api_read_pool": VIEWER,
    "workbench_pools_api_replace_pool": MEMBER,
    "workbench_pools_api_update_pool": MEMBER,
    "workbench_pools_api_delete_pool": ADMIN,  # another member's pool
    "workbench_pools_api_clone_pool": MEMBER,
    "workbench_runs_api_create_run": MEMBER,
    "workbench_runs_api_list_runs": VIEWER,
    "workbench_runs_api_read_run": VIEWER,
    "workbench_runs_api_cancel_run": MEMBER,
    "workbench_runs_api_rerun_run": MEMBER,
    "workbench_experiments_api_list_datasets": VIEWER,
    "workbench_experiments_api_upload_dataset": MEMBER,
    "workbench_experiments_api_list_experiments": VIEWER,
    "workbench_experiments_api_create_experiment": MEMBER,
    "workbench_experiments_api_estimate_experiment": MEMBER,
    "workbench_experiments_api_read_experiment": VIEWER,
    "workbench_experiments_api_read_results": VIEWER,
    "workbench_experiments_api_pause_experiment": MEMBER,
    "workbench_experiments_api_resume_experiment": MEMBER,
    "workbench_experiments_api_cancel_experiment": MEMBER,
    "workbench_curation_api_list_judgments": VIEWER,
    "workbench_curation_api_read_my_judgment": VIEWER,
    "workbench_curation_api_save_my_judgment": MEMBER,
    "workbench_curation_api_list_tags": VIEWER,
    "workbench_curation_api_set_tags": MEMBER,
    "workbench_curation_api_list_gold_answers": VIEWER,
    "workbench_curation_api_save_my_gold_answer": MEMBER,
    "workbench_curation_api_list_comments": VIEWER,
    "workbench_curation_api_create_comment": VIEWER,  # viewers read and comment
    "workbench_curation_api_list_share_links": MEMBER,  # their URLs are the secret
    "workbench_curation_api_create_share_link": MEMBER,
    "workbench_curation_api_revoke_share_link": MEMBER,
    "workbench_curation_api_read_agreement": VIEWER,
    "workbench_curation_api_read_leaderboard": VIEWER,
    "workbench_curation_api_export": VIEWER,
}


def _estimate_token(world: World) -> str:
    from workbench.experiments.arms import ArmChoice, experiment_estimate

    estimate = experiment_estimate(
        user=world.alice, workspace=world.workspace, dataset=world.dataset,
        choice=ArmChoice(pool=world.pool),
    )  # fmt: skip
    return estimate.token


def api_body(operation: str, world: World) -> dict[str, Any] | None:
    """A valid body for an operation that takes one, so access (not validation) decides."""
    sim = world.credential.pk
    pool = {
        "name": "Matrix pool",
        "members": [{"credential_id": sim, "model": "sim-fast"}],
        "judge": {"credential_id": sim, "model": "sim-judge"},
    }
    bodies: dict[str, dict[str, Any]] = {
        "workbench_keys_api_create_credential": {"provider": "simulated", "label": "matrix"},
        "workbench_keys_api_update_credential": {"label": "renamed"},
        "workbench_keys_api_add_model": {"model": "sim-extra"},
        "workbench_pools_api_create_pool": pool,
        "workbench_pools_api_replace_pool": pool,
        "workbench_pools_api_update_pool": {"description": "changed"},
        "workbench_runs_api_create_run": {"pool": world.pool.slug, "prompt": "hi"},
        "workbench_experiments_api_create_experiment": {
            "dataset_id": world.dataset.pk,
            "pool": world.pool.slug,
            # An experiment starts only on a current estimate of the same arms.
            "estimate_token": _estimate_token(world)
            if operation == "workbench_experiments_api_create_experiment"
            else "",
        },
        "workbench_experiments_api_estimate_experiment": {
            "dataset_id": world.dataset.pk,
            "pool": world.pool.slug,
        },
        "workbench_curation_api_save_my_judgment": {"choice": "pick", "winner": "m1"},
        "workbench_curation_api_set_tags": {"tags": ["matrix"]},
        "workbench_curation_api_save_my_gold_answer": {"text": "The gold."},
        "workbench_curation_api_create_comment": {"body": "A comment."},
        "workbench_curation_api_create_share_link": {"show_costs": False},
        "workbench_curation_api_revoke_share_link": {"id": world.share.pk},
    }
    return bodies.get(operation)


# Routes checked separately: the admin site (staff only, by Django) and the REST API (by its
# OpenAPI spec, below).
SEPARATE_NAMESPACES = ("admin", "api")


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name"
    pattern: URLPattern
    prefix: str  # the regex text of the resolvers above it, for messages

    @property
    def kwargs(self) -> list[str]:
        return list(self.pattern.pattern.converters)  # type: ignore[attr-defined]


def walk(
    patterns: list[Any] | None = None, namespace: str = "", converters: dict | None = None
) -> Iterator[tuple[str, URLPattern, list[str]]]:
    """Yield (qualified name, pattern, kwarg names of the whole path) for every URL pattern."""
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for entry in patterns:
        here = {**(converters or {}), **getattr(entry.pattern, "converters", {})}
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
            yield from walk(entry.url_patterns, inner.lstrip(":"), here)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else (entry.name or "")
            yield name or f"<unnamed {entry.pattern}>", entry, list(here)


def page_routes() -> list[tuple[str, list[str]]]:
    """Every named page route outside the separately checked namespaces, with its kwargs."""
    found: dict[str, list[str]] = {}
    for name, _pattern, kwargs in walk():
        if name.split(":", 1)[0] in SEPARATE_NAMESPACES:
            continue
        found.setdefault(name, kwargs)
    return sorted(found.items())


def admin_pages() -> list[str]:
    """The admin site's pages that take no arguments (index and each model's list and form)."""
    names = []
    for name, _pattern, _kwargs in walk():
        if not name.startswith("admin:") or name in ("admin:logout", "admin:login"):
            continue
        try:
            reverse(name)
        except NoReverseMatch:
            continue
        names.append(name)
    # autocomplete is a 403 without its query, even for staff; credentials are only added in
    # the app, which encrypts their keys (keys/admin.py refuses the add form to everyone).
    return sorted(set(names) - {"admin:autocomplete", "admin:keys_credential_add"})


def kwarg_values(name: str, kwargs: list[str], world: World) -> dict[str, Any]:
    """Real objects for a route's URL kwargs; a kwarg nobody knows how to fill fails loudly."""
    by_route: dict[tuple[str, str], Any] = {
        ("keys", "pk"): world.credential.pk,
        ("tokens", "pk"): world.token.pk,
        ("accounts:invitation_accept", "token"): world.invitation.token,
        ("curation:share", "token"): world.share.token,
    }
    common: dict[str, Any] = {
        "ws": world.workspace.slug,
        "pool": world.pool.slug,
        "run_id": world.run.pk,
        "membership_id": world.membership.pk,
        "invitation_id": world.invitation.pk,
        "experiment_id": world.experiment.pk,
        "result_id": world.experiment.results.first().pk,  # type: ignore[union-attr]
        "dataset_id": world.dataset.pk,
        "link_id": world.share.pk,
        "uidb64": "MQ",
    }
    values: dict[str, Any] = {}
    for kwarg in kwargs:
        for key in ((name, kwarg), (name.split(":", 1)[0], kwarg)):
            if key in by_route:
                values[kwarg] = by_route[key]
                break
        else:
            if name == "accounts:password_reset_confirm" and kwarg == "token":
                values[kwarg] = "set-password"
            elif kwarg in common:
                values[kwarg] = common[kwarg]
            else:
                raise AssertionError(
                    f"route {name!r}: no value for URL kwarg {kwarg!r}; add one to "
                    "tests/security/routes.py kwarg_values"
                )
    return values
