def register(router) -> None:
    pass


urlpatterns: list = []
