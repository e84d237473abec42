"""The Django admin works for staff, for every registered model, and only for staff."""

from __future__ import annotations

from django.contrib import admin
from django.test import Client
from django.urls import reverse


def test_it_opens_every_changelist_and_add_page_for_staff(staff_client: Client) -> None:
    assert staff_client.get("/admin/").status_code == 200
    for model in admin.site._registry:
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert staff_client.get(changelist).status_code == 200, changelist


def test_it_sends_non_staff_to_the_admin_login(alice_client: Client) -> None:
    response = alice_client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
