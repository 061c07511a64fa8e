import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from annotations.models import ApiToken
from annotations.services import TokenNotFound, api_token_create, api_token_revoke
from tests.helpers import signed_in

TOKENS = reverse("annotations:tokens")
SECRET = re.compile(r"arb_[A-Za-z0-9_-]{20,}")


def revoke_url(token: ApiToken) -> str:
    return reverse("annotations:token_revoke", args=[token.pk])


def api_queues(secret: str) -> int:
    return Client().get("/api/queues/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def test_anonymous_is_sent_to_login(annotator):
    api_token_create(user=annotator, name="laptop")
    token = ApiToken.objects.get()
    for response in (Client().get(TOKENS), Client().post(revoke_url(token))):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert ApiToken.objects.count() == 1


def test_outsiders_get_403(outsider):
    client = signed_in(outsider)
    assert client.get(TOKENS).status_code == 403
    assert client.post(TOKENS, {"name": "sneaky"}).status_code == 403
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("who", ["annotator", "researcher", "admin"])
def test_every_api_role_opens_the_page_with_a_docs_link(users, who):
    response = signed_in(users[who]).get(TOKENS)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/api/docs"' in html and "No tokens yet." in html
    assert f'href="{TOKENS}"' in html  # the nav link


def test_wrong_methods_are_refused(annotator):
    api_token_create(user=annotator, name="laptop")
    token = ApiToken.objects.get()
    client = signed_in(annotator)
    assert client.put(TOKENS).status_code == 405
    assert client.get(revoke_url(token)).status_code == 405
    assert ApiToken.objects.count() == 1


def test_create_shows_the_secret_once_and_it_works_against_the_api(annotator):
    client = signed_in(annotator)
    response = client.post(TOKENS, {"name": "labelling script"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    (secret,) = set(SECRET.findall(html))
    assert "will not be shown again" in html
    assert f'curl -H "Authorization: Bearer {secret}" http://testserver/api/queues/' in html
    token = ApiToken.objects.get(user=annotator)
    assert token.name == "labelling script"
    assert api_queues(secret) == 200

    again = client.get(TOKENS).content.decode()
    assert "<td>labelling script</td>" in again
    assert not SECRET.search(again) and token.digest not in again
    assert "will not be shown again" not in again


def test_the_list_shows_only_your_own_tokens_and_never_a_digest(annotator, annotator2):
    api_token_create(user=annotator, name="mine")
    api_token_create(user=annotator2, name="theirs")
    html = signed_in(annotator).get(TOKENS).content.decode()
    assert "<td>mine</td>" in html and "theirs" not in html
    assert '<span class="muted">never</span>' in html  # last used
    for token in ApiToken.objects.all():
        assert token.digest not in html


def test_revoke_stops_the_token_authenticating(annotator):
    secret = api_token_create(user=annotator, name="laptop")
    keep = api_token_create(user=annotator, name="desktop")
    assert api_queues(secret) == 200
    client = signed_in(annotator)
    response = client.post(revoke_url(ApiToken.objects.get(name="laptop")))
    assert response.status_code == 302 and response["Location"] == TOKENS
    assert api_queues(secret) == 401
    assert api_queues(keep) == 200
    html = client.get(TOKENS).content.decode()
    assert "Token revoked" in html
    assert "<td>laptop</td>" not in html and "<td>desktop</td>" in html


def test_another_users_token_is_404_and_stays(annotator, annotator2, admin_user):
    secret = api_token_create(user=annotator2, name="theirs")
    token = ApiToken.objects.get()
    for intruder in (annotator, admin_user):  # not even an admin revokes someone else's here
        assert signed_in(intruder).post(revoke_url(token)).status_code == 404
    missing = reverse("annotations:token_revoke", args=[999])
    assert signed_in(annotator).post(missing).status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()
    assert api_queues(secret) == 200
    with pytest.raises(TokenNotFound):
        api_token_revoke(user=annotator, token_id=token.pk)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "This field is required."),
        ("   ", "This field is required."),
        ("x" * 101, "Ensure this value has at most 100 characters (it has 101)."),
        ("laptop", "You already have a token named “laptop”."),
    ],
)
def test_bad_names_are_explained_and_create_nothing(annotator, name, message):
    api_token_create(user=annotator, name="laptop")
    response = signed_in(annotator).post(TOKENS, {"name": name})
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert not SECRET.search(html)
    assert ApiToken.objects.count() == 1


def test_the_same_name_is_fine_for_another_user(annotator, annotator2):
    api_token_create(user=annotator2, name="laptop")
    response = signed_in(annotator).post(TOKENS, {"name": "laptop"})
    assert response.status_code == 200 and SECRET.search(response.content.decode())
    assert ApiToken.objects.filter(name="laptop").count() == 2


def test_a_duplicate_name_is_refused_by_the_service_too(annotator):
    api_token_create(user=annotator, name="laptop")
    with pytest.raises(ValidationError, match="already have a token named “laptop”"):
        api_token_create(user=annotator, name="laptop")
    assert ApiToken.objects.count() == 1


def test_the_command_prints_a_working_token_and_refuses_a_taken_name(annotator, capsys):
    call_command("api_token", annotator.username)
    call_command("api_token", annotator.username)  # default names differ: two tokens
    secrets = capsys.readouterr().out.split()
    assert len(secrets) == 2 and all(api_queues(secret) == 200 for secret in secrets)
    call_command("api_token", annotator.username, "--name", "laptop")
    with pytest.raises(CommandError, match="already have a token named “laptop”"):
        call_command("api_token", annotator.username, "--name", "laptop")
    assert ApiToken.objects.filter(user=annotator).count() == 3
    with pytest.raises(CommandError, match="No active user named 'nobody'"):
        call_command("api_token", "nobody")
