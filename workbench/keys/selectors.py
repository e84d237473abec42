"""Reads about credentials, catalogs and prices, always scoped to one user in one workspace."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from fusion.costs import DEFAULT_PRICES, Price, price_for
from workbench.accounts.models import Membership, User, Workspace
from workbench.keys.models import CatalogModel, Credential, CredentialKey, ModelPrice, Scope


def credentials_usable_by(user: User, workspace: Workspace) -> QuerySet[Credential]:
    """The workspace's shared credentials and the user's own personal ones there.

    Empty for anyone who is not a member. Roles are the caller's business: a viewer sees the
    same list but may not run anything.
    """
    if (
        not user.is_authenticated
        or not Membership.objects.filter(user=user, workspace=workspace).exists()
    ):
        return Credential.objects.none()
    return (
        Credential.objects.filter(workspace=workspace)
        .filter(Q(scope=Scope.WORKSPACE) | Q(scope=Scope.PERSONAL, owner=user))
        .prefetch_related(Prefetch("keys", queryset=CredentialKey.objects.order_by("position")))
        .order_by("scope", "label", "id")
    )


def credential_get(user: User, workspace: Workspace, pk: int | str) -> Credential:
    """One credential the user may see, or 404 (another user's personal credential included)."""
    try:
        return credentials_usable_by(user, workspace).get(pk=int(pk))
    except (Credential.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def catalog_models(credential: Credential) -> list[str]:
    return list(credential.catalog.order_by("model_id").values_list("model_id", flat=True))


def catalog_entries(credential: Credential) -> QuerySet[CatalogModel]:
    return credential.catalog.order_by("model_id")


def catalogs_for(user: User, workspace: Workspace) -> dict[int, list[str]]:
    """Credential id -> its catalog, for every credential the user may use in the workspace."""
    ids = list(credentials_usable_by(user, workspace).values_list("pk", flat=True))
    catalogs: dict[int, list[str]] = {pk: [] for pk in ids}
    rows = CatalogModel.objects.filter(credential_id__in=ids).order_by("model_id")
    for credential_id, model_id in rows.values_list("credential_id", "model_id"):
        catalogs[credential_id].append(model_id)
    return catalogs


def price_table() -> dict[str, Price]:
    """The prices every estimate and every run uses: the built-in table overlaid with the
    admin's rows (a row marked unpriced removes the model's price). Pass it as ``prices`` to
    ``fusion.costs`` so web and worker agree."""
    table = dict(DEFAULT_PRICES)
    for row in ModelPrice.objects.all():
        if row.unpriced:
            table.pop(row.model, None)
        else:
            table[row.model] = Price(row.input_per_million, row.output_per_million)
    return table


def model_price(model: str, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of ``model``, or None when it is unpriced."""
    return price_for(model, price_table() if prices is None else prices)
