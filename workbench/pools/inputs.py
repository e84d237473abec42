"""What a pool is made of, as the editor, the API and the presets hand it to the services, and
its validation: every problem at once, each under the path of the field it is about
("name", "members.2.model", "judge.credential"), so forms and the API can show them in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from workbench.accounts.models import User, Workspace
from workbench.keys.models import CatalogModel, Credential, Scope
from workbench.keys.selectors import credentials_usable_by
from workbench.lib.errors import ServiceError
from workbench.pools.models import DebateJudge, Mode

MAX_MEMBERS = 16
MAX_ROUNDS = 5
MAX_FALLBACKS = 5
MAX_TOKENS = 200_000
MAX_DEADLINE_S = 3600
MAX_BUDGET_USD = Decimal("10000")
MAX_PROMPT_CHARS = 20_000
MAX_INSTRUCTIONS_CHARS = 8_000
MAX_MODEL_CHARS = 200
# Merge and debate fuse the answers, which takes a judge; best-of may leave the pick to people.
MODES_NEEDING_JUDGE = frozenset({Mode.MERGE, Mode.DEBATE})
# Path segments of the pool pages that a slug must not shadow.
RESERVED_SLUGS = frozenset({"new"})


@dataclass
class MemberInput:
    credential_id: int | None
    model: str
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_models: list[str] = field(default_factory=list)
    # The model (and fallbacks) may be missing from the catalog: typed in on purpose.
    custom_model: bool = False


@dataclass
class JudgeInput:
    credential_id: int | None
    model: str
    instructions: str = ""
    temperature: float | None = 0.0
    max_tokens: int | None = None
    swap_twice: bool = False
    custom_model: bool = False


@dataclass
class PoolInput:
    name: str
    members: list[MemberInput]
    judge: JudgeInput | None = None
    slug: str = ""
    description: str = ""
    mode: str = Mode.BEST_OF
    rounds: int = 1
    debate_judge: str = DebateJudge.MERGE
    system_prompt: str = ""
    quorum: int | None = None
    deadline_s: int | None = None
    budget_usd: Decimal | None = None
    blind_mode: bool = False


@dataclass(frozen=True)
class CleanMember:
    credential: Credential
    model: str
    system_prompt: str
    temperature: float | None
    max_tokens: int | None
    fallback_models: list[str]
    custom_model: bool


@dataclass(frozen=True)
class CleanJudge:
    credential: Credential
    model: str
    instructions: str
    temperature: float | None
    max_tokens: int | None
    swap_twice: bool
    custom_model: bool


@dataclass(frozen=True)
class CleanPool:
    name: str
    slug: str
    description: str
    mode: str
    rounds: int
    debate_judge: str
    system_prompt: str
    quorum: int | None
    deadline_s: int | None
    budget_usd: Decimal | None
    members: list[CleanMember]
    judge: CleanJudge | None
    blind_mode: bool = False


class PoolValidationError(ServiceError):
    """Every problem of a pool; ``errors`` maps field paths to messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {path: list(messages) for path, messages in errors.items()}
        count = sum(len(m) for m in self.errors.values())
        path, messages = next(iter(self.errors.items()))
        if count == 1:
            message = f"{describe_path(path)}{messages[0]}"
        else:
            message = f"The pool has {count} problems: {describe_path(path)}{messages[0]} …"
        super().__init__(message, field=path.split(".")[0], code="invalid_pool")


def describe_path(path: str) -> str:
    """A human prefix for an error: "Member 2: ", "Judge: " or ""."""
    parts = path.split(".")
    if parts[0] == "members" and len(parts) > 1 and parts[1].isdigit():
        return f"Member {int(parts[1]) + 1}: "
    if parts[0] == "judge":
        return "Judge: "
    return ""


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise PoolValidationError(self.errors)


def _number_in(
    errors: _Errors, path: str, value: float | int | None, low: float, high: float, what: str
) -> None:
    if value is not None and not (low <= value <= high):
        errors.add(path, f"{what} must be between {low:g} and {high:g}.")


class _Credentials:
    """The credentials a user may put into a pool of a workspace, with their catalogs."""

    def __init__(
        self, user: User, workspace: Workspace, usable: Iterable[Credential] | None = None
    ) -> None:
        self.workspace = workspace
        found = credentials_usable_by(user, workspace) if usable is None else usable
        self.usable = {c.pk: c for c in found}
        self._catalogs: dict[int, set[str]] | None = None

    @property
    def catalogs(self) -> dict[int, set[str]]:
        """Loaded only when a model is checked against one (the gateway's never are)."""
        if self._catalogs is None:
            self._catalogs = {pk: set() for pk in self.usable}
            rows = CatalogModel.objects.filter(credential_id__in=list(self.usable))
            for credential_id, model_id in rows.values_list("credential_id", "model_id"):
                self._catalogs[credential_id].add(model_id)
        return self._catalogs

    def check(self, errors: _Errors, path: str, credential_id: int | None) -> Credential | None:
        if credential_id is None:
            errors.add(f"{path}.credential", "Choose a credential.")
            return None
        credential = self.usable.get(credential_id)
        if credential is not None:
            return credential
        other = Credential.objects.filter(
            pk=credential_id, workspace=self.workspace, scope=Scope.PERSONAL
        ).exists()
        errors.add(
            f"{path}.credential",
            "That is another member's personal credential; choose a workspace credential "
            "or one of your own."
            if other
            else "Choose a credential of this workspace.",
        )
        return None

    def check_model(
        self,
        errors: _Errors,
        path: str,
        credential: Credential | None,
        model: str,
        custom: bool,
        field_name: str = "model",
    ) -> None:
        if credential is None or custom or not model:
            return
        if model not in self.catalogs.get(credential.pk, set()):
            errors.add(
                f"{path}.{field_name}",
                f"{model} is not in the catalog of {credential.label}. Refresh the catalog "
                "on the Keys page, or mark the model as not listed to use it anyway.",
            )


def _clean_model(errors: _Errors, path: str, model: str) -> str:
    model = model.strip()
    if not model:
        errors.add(path, "Enter a model.")
    elif len(model) > MAX_MODEL_CHARS or any(c.isspace() for c in model):
        errors.add(path, "A model id is one word of at most 200 characters.")
    return model


def _clean_text(errors: _Errors, path: str, text: str, limit: int, what: str) -> str:
    text = text.strip()
    if len(text) > limit:
        errors.add(path, f"{what} must be at most {limit:,} characters.")
    return text


def validate_pool(
    data: PoolInput,
    *,
    user: User,
    workspace: Workspace,
    usable: Iterable[Credential] | None = None,
) -> CleanPool:
    """Check everything; raise ``PoolValidationError`` listing every problem found.

    ``usable``: the credentials the user may use there, when the caller has them already."""
    from django.utils.text import slugify

    errors = _Errors()
    creds = _Credentials(user, workspace, usable)

    name = " ".join(data.name.split())
    if not name:
        errors.add("name", "Give the pool a name.")
    elif len(name) > 80:
        errors.add("name", "Keep the name under 80 characters.")
    slug = data.slug.strip().lower()
    if slug and (slugify(slug) != slug or len(slug) > 60):
        errors.add("slug", "Use lowercase letters, digits and hyphens (at most 60).")
    elif slug in RESERVED_SLUGS:
        errors.add("slug", f"{slug!r} is reserved; choose another slug.")
    description = _clean_text(errors, "description", data.description, 300, "The description")
    if data.mode not in Mode.values:
        errors.add("mode", "Choose best of, merge or debate.")
    if data.debate_judge not in DebateJudge.values:
        errors.add("debate_judge", "Choose how a debate ends.")
    rounds = data.rounds if data.mode == Mode.DEBATE else 1
    _number_in(errors, "rounds", rounds, 1, MAX_ROUNDS, "Rounds")
    system_prompt = _clean_text(
        errors, "system_prompt", data.system_prompt, MAX_PROMPT_CHARS, "The system prompt"
    )

    count = len(data.members)
    if not 1 <= count <= MAX_MEMBERS:
        errors.add("members", f"A pool has 1 to {MAX_MEMBERS} members, not {count}.")
    members: list[CleanMember] = []
    for index, item in enumerate(data.members):
        path = f"members.{index}"
        credential = creds.check(errors, path, item.credential_id)
        model = _clean_model(errors, f"{path}.model", item.model)
        creds.check_model(errors, path, credential, model, item.custom_model)
        _number_in(errors, f"{path}.temperature", item.temperature, 0, 2, "Temperature")
        _number_in(errors, f"{path}.max_tokens", item.max_tokens, 1, MAX_TOKENS, "Max tokens")
        fallbacks = [f.strip() for f in item.fallback_models if f.strip()]
        if len(fallbacks) > MAX_FALLBACKS:
            errors.add(f"{path}.fallback_models", f"At most {MAX_FALLBACKS} fallback models.")
        for fallback in fallbacks:
            _clean_model(errors, f"{path}.fallback_models", fallback)
            creds.check_model(
                errors, path, credential, fallback, item.custom_model, "fallback_models"
            )
        persona = _clean_text(
            errors, f"{path}.system_prompt", item.system_prompt, MAX_PROMPT_CHARS, "The persona"
        )
        if credential is not None:
            members.append(
                CleanMember(
                    credential,
                    model,
                    persona,
                    item.temperature,
                    item.max_tokens,
                    list(dict.fromkeys(fallbacks)),
                    item.custom_model,
                )
            )

    judge: CleanJudge | None = None
    wants_judge = data.judge is not None and (data.judge.credential_id or data.judge.model)
    if not wants_judge:
        if data.mode in MODES_NEEDING_JUDGE:
            errors.add("judge", f"{Mode(data.mode).label} needs a judge to fuse the answers.")
    else:
        assert data.judge is not None
        credential = creds.check(errors, "judge", data.judge.credential_id)
        model = _clean_model(errors, "judge.model", data.judge.model)
        creds.check_model(errors, "judge", credential, model, data.judge.custom_model)
        _number_in(errors, "judge.temperature", data.judge.temperature, 0, 2, "Temperature")
        _number_in(errors, "judge.max_tokens", data.judge.max_tokens, 1, MAX_TOKENS, "Max tokens")
        instructions = _clean_text(
            errors,
            "judge.instructions",
            data.judge.instructions,
            MAX_INSTRUCTIONS_CHARS,
            "The instructions",
        )
        if credential is not None:
            judge = CleanJudge(
                credential,
                model,
                instructions,
                data.judge.temperature,
                data.judge.max_tokens,
                data.judge.swap_twice,
                data.judge.custom_model,
            )

    if data.quorum is not None and count and not 1 <= data.quorum <= count:
        errors.add("quorum", f"The quorum must be between 1 and the number of members ({count}).")
    _number_in(errors, "deadline_s", data.deadline_s, 1, MAX_DEADLINE_S, "The deadline")
    budget = _clean_budget(errors, data.budget_usd)
    errors.raise_if_any()
    return CleanPool(
        name=name,
        slug=slug,
        description=description,
        mode=data.mode,
        rounds=rounds,
        debate_judge=data.debate_judge,
        system_prompt=system_prompt,
        quorum=data.quorum,
        deadline_s=data.deadline_s,
        budget_usd=budget,
        members=members,
        judge=judge,
        blind_mode=bool(data.blind_mode),
    )


def _clean_budget(errors: _Errors, value: Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        budget = Decimal(value).quantize(Decimal("0.0001"))
    except (InvalidOperation, TypeError, ValueError):
        errors.add("budget_usd", "Enter an amount in US dollars.")
        return None
    if not Decimal(0) < budget <= MAX_BUDGET_USD:
        errors.add("budget_usd", f"The budget must be above $0 and at most ${MAX_BUDGET_USD:,}.")
    return budget
