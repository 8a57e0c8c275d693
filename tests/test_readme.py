"""The README's examples run as written against a real `formicary serve`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from formicary.process import ServerProcess

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _curl_bodies() -> list[tuple[str, str]]:
    """(path, JSON body) of each `curl ... -d '...'` POST in the README's session."""
    session = next(b for b in _blocks("bash") if "curl" in b)
    return re.findall(r"curl -s localhost:8000(\S+) .*?-d '(.*?)'", session, flags=re.DOTALL)


def test_readme_curl_session_and_sdk_example(tmp_path: Path) -> None:
    with ServerProcess(f"sqlite:///{tmp_path / 'readme.db'}") as server:
        posts = _curl_bodies()
        assert [path for path, _ in posts] == ["/v1/accounts", "/v1/transfers"]
        answers = []
        for path, body in posts:
            response = httpx.post(
                server.base_url + path, content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 200, response.text
            assert {r["result"] for r in response.json()["results"]} == {"ok"}
            answers.append(response.text)
        # The README shows the transfer's answer as a comment; it must be what the server says.
        (shown,) = re.findall(r"^# (\{\"results\".*\})$", README, flags=re.MULTILINE)
        assert answers[1] == shown

        (example,) = [b for b in _blocks("python") if "formicary.client" in b]
        namespace: dict[str, object] = {}
        exec(example.replace("http://127.0.0.1:8000", server.base_url), namespace)
        assert namespace["result"] == "ok"

        account = httpx.get(f"{server.base_url}/v1/accounts/7").json()
        assert account["credits_posted"] == 600  # 500 from curl + 100 from the SDK example
        trial = httpx.get(f"{server.base_url}/v1/ledgers/156/trial-balance").json()
        assert trial["balanced"] is True
