from __future__ import annotations

from django.urls import path

from workbench.gateway import views

app_name = "gateway"

urlpatterns = [
    path("v1/models", views.openai_models, name="models"),
    path("v1/chat/completions", views.openai_chat, name="chat"),
    path("anthropic/v1/messages", views.anthropic_messages, name="anthropic_messages"),
]
