import pytest
from django.test import Client
from django.urls import reverse

from tests.helpers import signed_in

# Every page of this app and the roles that may open it; everyone else gets 403.
PAGES = {
    "annotator_home": {"annotator", "admin"},
    "researcher_home": {"researcher", "admin"},
    "operations_home": {"admin"},
    "operations_health": {"admin"},
}
EVERYONE = ("annotator", "researcher", "admin", "outsider")


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_is_sent_to_login(page, db):
    response = Client().get(reverse(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("who", EVERYONE)
def test_each_role_sees_only_its_pages(page, who, users, redis_server):
    response = signed_in(users[who]).get(reverse(page))
    assert response.status_code == (200 if who in PAGES[page] else 403)


@pytest.mark.parametrize("page", PAGES)
def test_pages_refuse_post(page, users):
    response = signed_in(users["admin"]).post(reverse(page))
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("who", "home"),
    [
        ("annotator", "annotator_home"),
        ("researcher", "researcher_home"),
        ("admin", "operations_home"),
    ],
)
def test_home_lands_on_the_role_page(who, home, users):
    response = signed_in(users[who]).get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse(home)


def test_user_without_role_is_told_so(users):
    response = signed_in(users["outsider"]).get(reverse("home"))
    assert response.status_code == 403
    assert b"No role yet" in response.content


def test_navigation_shows_only_the_roles_pages(users):
    annotator_page = signed_in(users["annotator"]).get(reverse("annotator_home")).content.decode()
    assert reverse("annotator_home") in annotator_page
    assert reverse("researcher_home") not in annotator_page
    assert reverse("operations_home") not in annotator_page
    admin_page = signed_in(users["admin"]).get(reverse("operations_home")).content.decode()
    for page in ("annotator_home", "researcher_home", "operations_home"):
        assert reverse(page) in admin_page


def test_login_with_a_wrong_password_shows_an_error(annotator):
    response = Client().post(reverse("login"), {"username": "annotator1", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_logout_requires_post_and_ends_the_session(annotator):
    client = signed_in(annotator)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("annotator_home")).status_code == 302


def test_pages_carry_the_csrf_header_and_vendored_htmx(annotator):
    html = signed_in(annotator).get(reverse("annotator_home")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/django_htmx/ext/hx-ws-2.min.js" in html
    assert "https://" not in html  # nothing from a CDN


def test_admin_sees_role_counts(users):
    html = signed_in(users["admin"]).get(reverse("operations_home")).content.decode()
    assert '<td>annotator</td><td class="num">1</td>' in html


@pytest.mark.parametrize(
    "path", ["/queues/{}/label/", "/queues/{}/manage/", "/queues/exports/{}/", "/models/{}/"]
)
@pytest.mark.parametrize("number", [0, 2**63, 2**64, 10**30])
def test_a_page_id_beyond_the_database_is_a_404_not_a_500(path, number, users):
    # The same on SQLite and PostgreSQL: such an id never reaches the database driver.
    response = signed_in(users["admin"]).get(path.format(number))
    assert response.status_code == 404
