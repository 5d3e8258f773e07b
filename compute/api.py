"""REST API of this app: thin views that validate, call one service and serialize."""


def register(router) -> None:
    """Add this app's viewsets to the /api/v1/ router."""


urlpatterns: list = []
