from __future__ import annotations

from django.urls import path

from workbench.curation import views

app_name = "curation"

run = "w/<slug:ws>/runs/<uuid:run_id>/curation/"
workspace = "w/<slug:ws>/curation/"

# The judges' reliability page has a namespace of its own: the workspace navigation links
# "judges:index" (accounts.nav).
judges_patterns = ([path("", views.judges, name="index")], "judges")

urlpatterns = [
    path(run, views.panel, name="panel"),
    path(f"{run}judgment/", views.judgment_save, name="judgment"),
    path(f"{run}tags/", views.tags_set, name="tags"),
    path(f"{run}flag/", views.flag_set, name="flag"),
    path(f"{run}comments/", views.comment_create, name="comment"),
    path(f"{run}share/", views.share_create, name="share_create"),
    path(f"{run}share/<int:link_id>/revoke/", views.share_revoke, name="share_revoke"),
    path(f"{run}copy/", views.run_copy, name="copy"),
    path(f"{workspace}export/", views.export, name="export"),
    path(f"{workspace}review/", views.review, name="review"),
    path(f"{workspace}review/next/", views.review_next, name="review_next"),
    path(f"{workspace}leaderboard/", views.leaderboard, name="leaderboard"),
    path("s/<str:token>/", views.share_page, name="share"),
]
