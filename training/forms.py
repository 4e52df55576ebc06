"""The recommender's admin form: its columns, plus one field per model-family
hyper-parameter (``<family>__<parameter>``), all derived from the schemas
(``recommender.config_schema`` for the columns, ``recommender.families`` for the
families). A family field left empty means the family's default; only values that differ
from it are stored in ``Recommender.hyperparameters``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from recommender.config_schema import SETTINGS, time_zone_names
from recommender.families import FAMILIES, Family, family_params_clean
from recommender.models import Recommender
from recommender.setting_types import BOOL, CHOICE, FLOAT, INT, Setting

SEPARATOR = "__"


def family_field_name(family: Family, param: Setting) -> str:
    return f"{family.name}{SEPARATOR}{param.name}"


def _family_field(param: Setting) -> forms.Field:
    """A form field for one hyper-parameter: no bounds of its own (the schema's check
    runs in ``clean`` and its message lands on the field), empty = the default."""
    help_text = f"{param.help} Default {param.default}; allowed: {param.range_text()}.".strip()
    if param.kind == CHOICE:
        return forms.ChoiceField(
            choices=[("", f"default ({param.default})"), *((c, c) for c in param.choices)],
            required=False,
            help_text=help_text,
        )
    if param.kind == BOOL:
        return forms.NullBooleanField(required=False, help_text=help_text)
    field_class = {INT: forms.IntegerField, FLOAT: forms.FloatField}[param.kind]
    return field_class(
        required=False,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"placeholder": str(param.default), "step": "any"}),
    )


FAMILY_FIELDS: dict[str, tuple[Family, Setting]] = {
    family_field_name(family, param): (family, param)
    for family in FAMILIES.values()
    for param in family.params
}


def family_fieldsets() -> tuple[tuple[str, dict[str, Any]], ...]:
    """One collapsed fieldset per family, for ``RecommenderAdmin.fieldsets``."""
    return tuple(
        (
            f"{family.name} hyper-parameters",
            {
                "fields": tuple(family_field_name(family, p) for p in family.params),
                "classes": ("collapse",),
                "description": f"Used when the algorithm is {family.name}. Empty = the default.",
            },
        )
        for family in FAMILIES.values()
    )


class RecommenderForm(forms.ModelForm):
    class Meta:
        model = Recommender
        fields = (
            "name",
            "description",
            "schedule_cron",
            "schedule_timezone",
            "schedule_enabled",
            "algorithm",
            "tuning_budget_seconds",
            "num_threads",
            "random_seed",
            "event_weights",
            "duplicate_aggregation",
            "window_days",
            "use_item_features",
            "use_user_features",
            "holdout_strategy",
            "holdout_fraction",
            "eval_k",
            "key_metric",
            "gate_min_users",
            "gate_min_items",
            "gate_min_events",
            "gate_min_lift_over_popularity",
            "champion_tolerance",
            "champion_no_overlap_policy",
            "promotion_policy",
            "refit_on_full_data",
            "versions_kept",
            "click_event_types",
            "conversion_event_types",
        )
        widgets = {
            "schedule_cron": forms.TextInput(attrs={"size": 24, "class": "recsite-cron"}),
            "schedule_timezone": forms.Select(
                choices=[(name, name) for name in sorted(time_zone_names())]
            ),
        }

    def __init__(self, *args, **kwargs) -> None:
        """Show each setting's allowed values from the schemas; the model's
        ``clean_fields`` (run by the form) and ``clean`` enforce them, each error on its
        field."""
        super().__init__(*args, **kwargs)
        for name, setting in SETTINGS.items():
            field = self.fields.get(name)
            if field is None or setting.kind == BOOL:
                continue
            if setting.kind == CHOICE and not getattr(field, "choices", None):
                field.widget = forms.Select(choices=[(c, c) for c in setting.choices])
            elif setting.kind != CHOICE:
                field.help_text = f"{field.help_text} Allowed: {setting.range_text()}.".strip()
        stored = self.instance.hyperparameters or {}
        for name, (family, param) in FAMILY_FIELDS.items():
            self.initial.setdefault(name, stored.get(family.name, {}).get(param.name))

    def clean(self) -> dict:
        data = super().clean()
        if data.get("schedule_enabled") and not (data.get("schedule_cron") or "").strip():
            self.add_error(
                "schedule_cron",
                "Give a cron expression (e.g. “0 3 * * *”) or switch the schedule off.",
            )
        self.instance.hyperparameters = self._hyperparameters(data)
        return data

    def _hyperparameters(self, data: dict) -> dict[str, dict]:
        """The family fields as ``Recommender.hyperparameters``: the values that differ
        from the defaults, each checked by its family's schema."""
        given: dict[str, dict[str, Any]] = {}
        for name, (family, param) in FAMILY_FIELDS.items():
            value = data.get(name)
            if value not in (None, ""):
                given.setdefault(family.name, {})[param.name] = value
        stored: dict[str, dict] = {}
        for family_name, values in given.items():
            family = FAMILIES[family_name]
            try:
                cleaned = family_params_clean(family, values)
            except ValidationError as exc:
                for param, messages in exc.message_dict.items():
                    self.add_error(f"{family_name}{SEPARATOR}{param}", messages)
                continue
            changed = {k: v for k, v in cleaned.items() if v != family.param(k).default}
            if changed:
                stored[family_name] = changed
        return stored


# Declared after the class body: the fields come from the families' schemas, and the
# admin's form factory only accepts fieldset names that the form class declares.
_family_form_fields = {name: _family_field(param) for name, (_, param) in FAMILY_FIELDS.items()}
RecommenderForm.declared_fields.update(_family_form_fields)
RecommenderForm.base_fields.update(_family_form_fields)
