"""HTML pages of the audit app (/audit/...)."""

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.event_list, name="events"),
    path("events/<int:event_id>/", views.event_detail, name="event_detail"),
    path("events/export.<str:fmt>", views.event_export, name="export"),
    path("chain/", views.chain_status, name="chain"),
    path("reports/", views.report_list, name="reports"),
    path("reports/<int:report_id>/", views.report_detail, name="report_detail"),
    path("reports/<int:report_id>/pdf/", views.report_pdf, name="report_pdf"),
    path("policy/", views.policy_edit, name="policy"),
    path("policy/manual/", views.manual_assessment, name="manual_assessment"),
    path("reauth/", views.reauth, name="reauth"),
    # Account security pages; the second-factor and password-expiry middleware let these through.
    path("account/", views.account_security, name="account"),
    path("account/otp/login/", views.otp_login_view, name="otp_login"),
    path("account/otp/enrol/", views.otp_enrol, name="otp_enrol"),
    path("account/otp/verify/", views.otp_verify, name="otp_verify"),
    path("account/password/", views.password_change, name="password_change"),
]
