"""HTML pages of this app."""

from django.urls import path
from django.views.generic import RedirectView

from billing import views

app_name = "billing"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="billing:usage"), name="index"),
    path("usage/", views.usage, name="usage"),
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:pk>/credit/", views.invoice_credit, name="invoice_credit"),
    path("invoices/<int:pk>/<str:fmt>/", views.invoice_download, name="invoice_download"),
    path("price-plans/", views.price_plans, name="price_plans"),
    path("budgets/", views.budgets, name="budgets"),
]
