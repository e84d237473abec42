"""Forms of the keys pages. Key fields never render a submitted value back into the page."""

from __future__ import annotations

from typing import Any

from django import forms

from fusion.providers.registry import PROVIDER_KINDS
from workbench.accounts.forms import ServiceErrorFormMixin
from workbench.keys.models import PROVIDER_CHOICES, Credential, Scope


class SecretTextarea(forms.Textarea):
    """A textarea that, like ``PasswordInput(render_value=False)``, starts empty on every
    render: a form redisplayed with errors must not put the keys into the HTML."""

    def format_value(self, value: Any) -> str | None:
        return None


KEYS_HELP = (
    "One key per line. Several keys form a pool the runs spread their calls over. "
    "After saving, only the last four characters are ever shown."
)


class CredentialCreateForm(ServiceErrorFormMixin, forms.Form):
    provider = forms.ChoiceField(choices=PROVIDER_CHOICES)
    label = forms.CharField(
        max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. OpenAI (team)"})
    )
    scope = forms.ChoiceField(
        choices=Scope.choices,
        initial=Scope.PERSONAL,
        widget=forms.RadioSelect,
        help_text="Workspace credentials can be used by every member; nobody can read the keys.",
    )
    base_url = forms.CharField(
        label="Base URL",
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "https://…/v1", "spellcheck": "false"}),
        help_text="The API root, e.g. http://localhost:11434/v1 for Ollama.",
    )
    keys = forms.CharField(
        label="API keys",
        required=False,
        widget=SecretTextarea(
            attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false", "class": "mono secret"}
        ),
        help_text=KEYS_HELP,
    )

    def __init__(self, *args: Any, can_share: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not can_share:
            self.fields["scope"].choices = [(Scope.PERSONAL, Scope.PERSONAL.label)]
            self.fields["scope"].help_text = "Only admins and owners may add workspace credentials."

    def key_lines(self) -> list[str]:
        return self.cleaned_data.get("keys", "").splitlines()


def provider_hints() -> dict[str, dict[str, Any]]:
    """What the add form's script needs to show the right fields for each provider."""
    return {
        kind: {
            "needs_key": spec.needs_key,
            "needs_base_url": spec.needs_base_url,
            "simulated": spec.protocol == "simulated",
            "default_base_url": spec.default_base_url or "",
            "help": spec.help,
        }
        for kind, spec in PROVIDER_KINDS.items()
    }


class CredentialEditForm(ServiceErrorFormMixin, forms.Form):
    label = forms.CharField(max_length=80)
    base_url = forms.CharField(label="Base URL", required=False, max_length=500)
    remove_keys = forms.TypedMultipleChoiceField(
        label="Remove keys",
        required=False,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
    )
    add_keys = forms.CharField(
        label="Add keys",
        required=False,
        widget=SecretTextarea(
            attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false", "class": "mono secret"}
        ),
        help_text="One key per line.",
    )

    def __init__(self, *args: Any, credential: Credential, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"label": credential.label, "base_url": credential.base_url})
        super().__init__(*args, **kwargs)
        self.fields["remove_keys"].choices = [(k.pk, k.display) for k in credential.keys.all()]
        if credential.kind.protocol == "simulated":
            # Offline: no server to point at and no key to send.
            del self.fields["base_url"]
            del self.fields["add_keys"]
        elif not credential.kind.needs_base_url:
            self.fields[
                "base_url"
            ].help_text = f"Leave empty for {credential.kind.default_base_url}."
        if not credential.keys.exists():
            del self.fields["remove_keys"]


class ModelAddForm(ServiceErrorFormMixin, forms.Form):
    model = forms.CharField(
        label="Model id",
        max_length=200,
        widget=forms.TextInput(attrs={"placeholder": "e.g. llama3.1:8b", "spellcheck": "false"}),
    )
