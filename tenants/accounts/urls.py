"""Account management pages, under /accounts/manage/."""

app_name = "accounts"

urlpatterns: list = []
