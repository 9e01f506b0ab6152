"""Releases as Hub datasets, verified before they are trusted, and pushed without surprises.

One tiny release (300 MedQuAD rows, 230 VQA-RAD image rows) is built once for the module
from a catalog of our own, with hostile text in its recipe description and a licence.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner
from conftest import write_yaml

from curate.catalog import resolve_data_root
from curate.cli import main
from curate.errors import ConfigError
from curate.mixes.card import escape, escape_paragraphs, validate_card
from curate.mixes.publish import push_release
from curate.pipeline.build import build_mix
from curate.pipeline.run import open_run
from curate.read.releases import list_releases, verify_release
from curate.store import sha256_file

HOSTILE = ("<script>alert('card')</script> Read [the terms](https://evil.example/phish) first.\n\n"
           "---\nlicense: mit\npretty_name: pwned\n---\n\n# Not a heading")
HOSTILE_LICENCE = "CC-BY-4.0 <img src=x onerror=alert(1)> [x](https://evil.example)"
HOSTILE_CITATION = "@misc{tiny,\n  title = {```\n# Broken out <script>alert(1)</script>}\n}"
TEXT_ROWS, IMAGE_ROWS = 300, 230

RECIPE = {
    "name": "tiny", "version": "1.0.0", "description": HOSTILE,
    "sources": ["tiny_text", "tiny_vqa"], "stages": {},
}


def _catalog(tmp: Path, data: Path) -> Path:
    shared = resolve_data_root()
    (data / "text").mkdir(parents=True)
    lines = (shared / "medical/medquad/medquad_sample_1500.jsonl").read_text("utf-8").splitlines()
    (data / "text/qa.jsonl").write_text("\n".join(lines[:TEXT_ROWS]) + "\n", "utf-8")
    (data / "vqa/images").mkdir(parents=True)
    rows = [json.loads(line) for line in
            (shared / "multimodal/vqa_rad/vqa_rad_pairs.jsonl").read_text("utf-8").splitlines()[:IMAGE_ROWS]]
    for row in rows:
        shutil.copy(shared / "multimodal/vqa_rad" / row["image"], data / "vqa" / row["image"])
    (data / "vqa/pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    catalog = tmp / "catalog"
    write_yaml(catalog / "sources/tiny_text.yaml", f"""
        name: tiny_text
        version: 1
        license: "{HOSTILE_LICENCE}"
        domain: medical
        task: qa
        homepage: https://huggingface.co/datasets/someone/tiny-text
        citation: {json.dumps(HOSTILE_CITATION)}
        location: {{path: text/qa.jsonl}}
        mapping: {{kind: chat, question: question, answer: answer}}
        """)
    write_yaml(catalog / "sources/tiny_vqa.yaml", """
        name: tiny_vqa
        version: 1
        license: CC0-1.0
        domain: medical
        task: vqa
        location: {path: vqa/pairs.jsonl}
        mapping: {kind: image_text, image: image, question: question, answer: answer}
        """)
    return catalog


def _build(tmp: Path, releases: Path):
    run = open_run(tmp / "tiny.yaml", catalog_dirs=[tmp / "catalog"], data_root=tmp / "data",
                   runs_dir=tmp / "runs")
    return build_mix(run, releases_dir=releases).release


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("publish")
    _catalog(tmp, tmp / "data")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(RECIPE), "utf-8")
    release = _build(tmp, tmp / "releases")
    assert release.status == "written"
    return tmp, release.path


def _copy(release: Path, tmp: Path) -> Path:
    target = tmp / "releases/tiny/1.0.0"
    shutil.copytree(release, target)
    return target


# -- Hub datasets (issue 14 item 4) -----------------------------------------------------------


def test_the_card_validates_offline_and_declares_what_the_hub_needs(tiny):
    _, path = tiny
    card = validate_card((path / "README.md").read_text("utf-8"))
    data = card.data.to_dict()
    assert data["pretty_name"] == "tiny 1.0.0" and data["language"] == ["en"]
    assert data["source_datasets"] == ["someone/tiny-text"]  # from the homepage on huggingface.co
    assert data["license"] == ["cc0-1.0", "other"]  # the hostile licence is no Hub id
    assert [(c["config_name"], c.get("default", False)) for c in data["configs"]] == [
        ("image_text", False), ("text", True)]
    info = {i["config_name"]: i for i in data["dataset_info"]}
    assert {"name": "images", "list": "image"} in info["image_text"]["features"]
    assert info["image_text"]["splits"] == [{"name": "train", "num_bytes": info["image_text"]["dataset_size"],
                                             "num_examples": IMAGE_ROWS}]
    assert info["text"]["splits"][0]["num_examples"] == TEXT_ROWS


def test_load_dataset_reads_the_folder_with_its_default_config_and_decoded_images(tiny, tmp_path):
    import datasets
    from PIL import Image

    _, path = tiny
    default = datasets.load_dataset(str(path), cache_dir=str(tmp_path))
    assert list(default) == ["train"] and default["train"].num_rows == TEXT_ROWS
    assert default["train"][0]["messages"][0]["role"] == "user"
    images = datasets.load_dataset(str(path), "image_text", split="train", cache_dir=str(tmp_path))
    assert images.num_rows == IMAGE_ROWS
    assert isinstance(images.features["images"], datasets.List)
    assert isinstance(images.features["images"].feature, datasets.Image)
    first = images[0]["images"][0]
    assert isinstance(first, Image.Image) and first.size[0] > 0


def test_image_data_is_written_in_row_groups_of_100_rows(tiny):
    _, path = tiny
    meta = pq.ParquetFile(path / "data/image_text/train-00000.parquet").metadata
    assert meta.num_rows == IMAGE_ROWS
    assert meta.num_row_groups == math.ceil(IMAGE_ROWS / 100)
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100, 100, 30]


def test_a_card_without_dataset_info_or_default_is_refused():
    card = ("---\nlicense: mit\npretty_name: x\nconfigs:\n- config_name: text\n"
            "  data_files: data/*.parquet\n---\n")
    with pytest.raises(ConfigError, match=r"exactly one `default: true`.*no `dataset_info`"):
        validate_card(card, where="x/README.md")
    with pytest.raises(ConfigError, match="unknown `language` 'english'"):
        validate_card(card.replace("license: mit", "language: [english]"))
    with pytest.raises(ConfigError, match="YAML block does not parse"):
        validate_card("---\n- a list\n---\n")


# -- escaping (issue 20 item 6) ---------------------------------------------------------------


def test_recipe_and_catalog_text_render_as_text_in_the_card(tiny):
    from markdown_it import MarkdownIt

    _, path = tiny
    text = (path / "README.md").read_text("utf-8")
    card = validate_card(text)
    # The `---` block in the description did not reach the metadata.
    assert card.data.pretty_name == "tiny 1.0.0" and "mit" not in card.data.license
    rendered = MarkdownIt("commonmark").enable("table").render(card.text)
    for tag in ("<script", "<img", "<a ", "<hr", "<h1>Not", "<h1>Broken"):
        assert tag not in rendered
    assert "&lt;script&gt;alert('card')&lt;/script&gt;" in rendered
    assert "[the terms](https://evil.example/phish)" in rendered  # shown as the characters it is
    assert "--- license: mit pretty_name: pwned ---" in rendered and "# Not a heading" in rendered
    assert "CC-BY-4.0 &lt;img src=x onerror=alert(1)&gt; [x](https://evil.example)" in rendered
    assert "| medical |" in text  # the tables still are tables
    assert rendered.count("<table>") == 4 + 1 + 4  # the cost to train, and the 2 example rows of each config
    # a citation is a code block that no backtick run in it can close
    fence = '<pre><code class="language-bibtex">@misc{tiny,\n  title = {```\n# Broken out &lt;script&gt;'
    assert fence in rendered


def test_escape_neutralises_inline_and_block_markdown():
    assert escape("a | b *c* `d` [e](f) <g>") == r"a \| b \*c\* \`d\` \[e\](f) &lt;g&gt;"
    assert escape_paragraphs("---\n\n## h\n\n1. item\n\n- item\n\nplain") == (
        "\\---\n\n\\## h\n\n1\\. item\n\n\\- item\n\nplain")


# -- verification (issue 20 item 5) -----------------------------------------------------------


def test_an_intact_release_verifies_and_every_kind_of_damage_is_named(tiny, tmp_path):
    _, path = tiny
    assert verify_release(path) == []
    runner = CliRunner()
    ok = runner.invoke(main, ["release", "verify", str(path)])
    assert ok.exit_code == 0 and "all 6 files match their sha256 in manifest.json" in ok.output

    copy = _copy(path, tmp_path)
    data = copy / "data/text/train-00000.parquet"
    data.write_bytes(data.read_bytes()[:1000])  # cut
    (copy / "data/image_text/train-00000.parquet").unlink()  # deleted
    (copy / "data/extra").mkdir()  # a stray folder
    (copy / "notes.txt").write_text("x")
    assert verify_release(copy) == [
        "data/image_text/train-00000.parquet: missing (the manifest lists it)",
        "data/text/train-00000.parquet: its bytes differ from the manifest's sha256 (1,000 bytes now): "
        "changed or cut after it was written",
        "data/extra/: a folder the manifest does not list",
        "notes.txt: a file the manifest does not list",
    ]
    bad = runner.invoke(main, ["release", "verify", str(copy)])
    assert bad.exit_code == 1 and "(4 differences)" in bad.output and "notes.txt" in bad.output
    export = runner.invoke(main, ["release", "export", str(copy), str(tmp_path / "exported")])
    assert export.exit_code == 2 and "does not match its manifest" in export.output
    assert not (tmp_path / "exported").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert verify_release(empty) == ["the folder is empty (no manifest.json, no data): not a release"]


def test_a_build_over_a_damaged_or_empty_release_is_an_error_never_unchanged(tiny, tmp_path):
    tmp, path = tiny
    copy = _copy(path, tmp_path)
    assert _build(tmp, tmp_path / "releases").status == "unchanged"
    data = copy / "data/text/train-00000.parquet"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(ConfigError, match=r"does not match its manifest: data/text/train-00000.parquet: its "
                                          r"bytes differ.*curate release verify"):
        _build(tmp, tmp_path / "releases")
    shutil.rmtree(copy)
    copy.mkdir()
    with pytest.raises(ConfigError, match="does not match its manifest: the folder is empty"):
        _build(tmp, tmp_path / "releases")


def test_a_killed_builds_folder_is_never_listed_and_is_removed_by_the_next_build(tiny, tmp_path):
    tmp, path = tiny
    releases = tmp_path / "releases"
    stale = releases / "tiny/.1.0.0.k1ll3d_x"
    shutil.copytree(path, stale)  # complete, as a build killed just before its rename leaves it
    other = releases / "tiny/.1.0.0x.abcdefgh"  # not a temporary folder of this version
    other.mkdir()
    assert list_releases(releases) == []
    old = os.umask(0o022)
    try:
        written = _build(tmp, releases)
    finally:
        os.umask(old)
    assert written.status == "written" and not stale.exists() and other.exists()
    assert [r.version for r in list_releases(releases)] == ["1.0.0"]
    assert (written.path.stat().st_mode & 0o777) == 0o755  # not mkdtemp's 0700
    assert [p.name for p in (releases / "tiny").iterdir() if p.name.startswith(".1.0.0.")] == [".1.0.0.lock"]
    assert sha256_file(written.path / "manifest.json") == sha256_file(path / "manifest.json")


# -- push (issue 14 item 4, issue 16 item 3) --------------------------------------------------


class RecordingHfApi:
    """A test double of ``huggingface_hub.HfApi``: records each call (after binding its
    arguments to the real method's signature, so the double cannot drift from the API),
    answers as the Hub would (a RepoUrl, a CommitInfo), sends nothing."""

    def __init__(self, token=None):
        self.token = token
        self.calls = []

    def _record(self, method, repo_id, kwargs):
        import inspect

        from huggingface_hub.hf_api import HfApi  # the real class, even when the CLI test patches it

        inspect.signature(getattr(HfApi, method)).bind(self, repo_id=repo_id, **kwargs)
        self.calls.append((method, repo_id, kwargs))

    def create_repo(self, repo_id, **kwargs):
        from huggingface_hub import RepoUrl

        self._record("create_repo", repo_id, kwargs)
        return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

    def create_branch(self, repo_id, **kwargs):
        self._record("create_branch", repo_id, kwargs)

    def upload_folder(self, **kwargs):
        from huggingface_hub import CommitInfo

        self._record("upload_folder", kwargs.pop("repo_id"), kwargs)
        pr = "https://huggingface.co/datasets/me/tiny/discussions/1" if kwargs["create_pr"] else None
        return CommitInfo(commit_url="https://huggingface.co/datasets/me/tiny/commit/abc123",
                          commit_message=kwargs["commit_message"], commit_description="", oid="abc123",
                          pr_url=pr)

    def create_tag(self, repo_id, **kwargs):
        self._record("create_tag", repo_id, kwargs)


def test_push_creates_a_private_repo_uploads_and_tags(tiny):
    _, path = tiny
    api = RecordingHfApi()
    result = push_release(path, "me/tiny", api=api)
    assert api.calls == [
        ("create_repo", "me/tiny", {"repo_type": "dataset", "private": True, "exist_ok": True}),
        ("upload_folder", "me/tiny", {"repo_type": "dataset", "folder_path": str(path),
                                      "commit_message": "tiny 1.0.0", "revision": None, "create_pr": False}),
        ("create_tag", "me/tiny", {"repo_type": "dataset", "tag": "v1.0.0", "revision": "abc123",
                                   "exist_ok": True}),
    ]
    assert result.url == "https://huggingface.co/datasets/me/tiny" and result.uploaded
    assert result.files == ["README.md", "data/image_text/train-00000.parquet",
                               "data/text/train-00000.parquet", "manifest.json", "recipe.yaml",
                               "removed.parquet", "report.html"]


def test_push_to_a_branch_as_a_pull_request_in_public(tiny):
    _, path = tiny
    api = RecordingHfApi()
    result = push_release(path, "me/tiny", private=False, revision="v1-candidate", create_pr=True, api=api)
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]  # no tag on a PR
    assert api.calls[0][2]["private"] is False
    assert api.calls[1][2] == {"repo_type": "dataset", "branch": "v1-candidate", "exist_ok": True}
    assert api.calls[2][2]["revision"] == "v1-candidate" and api.calls[2][2]["create_pr"] is True
    assert result.pr_url.endswith("/discussions/1")


def test_push_command_prints_the_repository_url(tiny, monkeypatch):
    _, path = tiny
    made = []

    def factory(token=None):
        made.append(RecordingHfApi(token))
        return made[-1]

    monkeypatch.setattr("huggingface_hub.HfApi", factory)
    result = CliRunner().invoke(main, ["release", "push", str(path), "--repo", "me/tiny",
                                       "--token", "hf_test"])
    assert result.exit_code == 0, result.output
    assert ("uploaded 7 files to https://huggingface.co/datasets/me/tiny at abc123, tagged v1.0.0"
            in result.output)
    assert made[0].token == "hf_test" and made[0].calls[0][2]["private"] is True
    public = CliRunner().invoke(main, ["release", "push", str(path), "--repo", "me/tiny", "--public",
                                       "--token", "t", "--create-pr"])
    assert public.exit_code == 0 and "opened pull request" in public.output
    assert made[1].calls[0][2]["private"] is False


def test_push_refuses_a_release_without_dataset_info_or_that_fails_to_verify(tiny, tmp_path):
    _, path = tiny
    copy = _copy(path, tmp_path)
    card = (copy / "README.md").read_text("utf-8")
    start, end = card.index("dataset_info:"), card.index("\n---\n")
    (copy / "README.md").write_text(card[:start] + card[end + 1:], "utf-8")  # as an older curate wrote it
    manifest = json.loads((copy / "manifest.json").read_text("utf-8"))
    manifest["files"]["README.md"] = sha256_file(copy / "README.md")
    (copy / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    api = RecordingHfApi()
    with pytest.raises(ConfigError, match="not a valid Hub dataset card: no `dataset_info`"):
        push_release(copy, "me/tiny", api=api)
    (copy / "removed.parquet").unlink()
    with pytest.raises(ConfigError, match="removed.parquet: missing"):
        push_release(copy, "me/tiny", api=api, dry_run=True)
    assert api.calls == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("token", ["hf_not_a_real_token", None])
def test_push_offline_is_one_line_that_says_to_log_in_or_go_online(tiny, tmp_path, token):
    """The README's push command, with the Hub unreachable (a closed local port)."""
    _, path = tiny
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=str(Path(__file__).parents[2]))
    if token:
        env["HF_TOKEN"] = token
    done = subprocess.run([sys.executable, "-m", "curate.cli", "release", "push", str(path),
                           "--repo", "me/demo"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--dry-run" in lines[0] and "log in" in lines[0]
    if token:
        assert lines[0].startswith("error: cannot reach the Hugging Face Hub at http://127.0.0.1:")
        assert "go online" in lines[0]
    else:
        assert lines[0].startswith("error: no Hugging Face token")


def test_a_catalog_language_must_be_a_code(tmp_path):
    from conftest import source_from_yaml

    entry = """
        name: x
        version: 1
        license: MIT
        domain: general
        task: qa
        language: {language}
        location: {{path: x.jsonl}}
        mapping: {{kind: chat, question: q, answer: a}}
        """
    assert source_from_yaml(tmp_path, entry.format(language="[fr, en]")).language == ["fr", "en"]
    with pytest.raises(ConfigError, match="language"):
        source_from_yaml(tmp_path, entry.format(language="[English]"))


# -- a Hub card like the best ones (issue 30 item 6) ------------------------------------------


def _section(card: str, title: str) -> str:
    start = card.index(f"\n## {title}\n")
    end = card.find("\n## ", start + 1)
    return card[start:end if end > 0 else None]


def test_the_card_shows_loading_uses_example_rows_limitations_personal_data_and_citations(tiny):
    _, path = tiny
    card = (path / "README.md").read_text("utf-8")
    loading = _section(card, "Loading")
    assert 'REPO = "<owner>/tiny"' in loading
    assert 'text = load_dataset(REPO, "text", split="train")' in loading and "SFTTrainer" in loading
    assert 'image_text = load_dataset(REPO, "image_text", split="train")' in loading
    uses = _section(card, "Uses")
    assert "### Direct use" in uses and "### Out-of-scope use" in uses
    assert "Not for clinical use" in uses  # the sources are medical
    examples = _section(card, "Example rows")
    first = pq.read_table(path / "data/text/train-00000.parquet").slice(0, 1).to_pylist()[0]
    assert escape(first["messages"][0]["content"])[:60] in examples
    assert examples.count("**`text`**, row") == 2 and "1 image):" in examples
    personal = _section(card, "Personal and sensitive information")
    assert "No de-identification stage ran" in personal and "No `clean` stage ran" in personal
    limitations = _section(card, "Limitations")
    assert "Loss tokens are estimated" in limitations and limitations.count("\n- ") >= 2
    citations = _section(card, "Citations")
    assert "`tiny_text`:" in citations and "@misc{tiny," in citations
    assert "`tiny_vqa`: no citation in its catalog entry." in citations
    validate_card(card)


def test_the_recipes_card_block_adds_its_uses_out_of_scope_uses_and_limitations(tiny):
    from curate.mixes.card import render_card

    _, path = tiny
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["recipe"]["resolved"]["card"] = {
        "uses": ["Teaching a model to answer *consumer* health questions."],
        "out_of_scope": ["Answering questions about drugs."], "limitations": ["Answers date from 2019."]}
    card = render_card(manifest, ["text"])
    assert "- Teaching a model to answer \\*consumer\\* health questions." in _section(card, "Uses")
    assert "- Answering questions about drugs." in _section(card, "Uses") and "Not for clinical use" in card
    assert _section(card, "Limitations").startswith("\n## Limitations\n\n- Answers date from 2019.\n- ")


def test_shipped_sources_cite_their_papers(catalog):
    cited = {name: catalog.source(name).citation or "" for name in
             ("medquad", "medquad_sample", "dolly", "self_instruct", "self_instruct_user", "vqa_rad")}
    assert "10.1186/s12859-019-3119-4" in cited["medquad"] == cited["medquad_sample"]
    assert "10.18653/v1/2023.acl-long.754" in cited["self_instruct"]
    assert "10.1038/sdata.2018.251" in cited["vqa_rad"] and "DatabricksBlog2023DollyV2" in cited["dolly"]


def test_the_release_holds_its_recipe_as_recipe_yaml_and_building_it_gives_the_same_release(tiny, tmp_path):
    tmp, path = tiny
    recipe = path / "recipe.yaml"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["files"]["recipe.yaml"] == sha256_file(recipe)
    assert yaml.safe_load(recipe.read_text()) == RECIPE == manifest["recipe"]["given"]
    run = open_run(recipe, catalog_dirs=[tmp / "catalog"], data_root=tmp / "data", runs_dir=tmp_path / "runs")
    again = build_mix(run, releases_dir=tmp_path / "releases").release
    assert (again.path / "manifest.json").read_bytes() == (path / "manifest.json").read_bytes()


def test_push_dry_run_lists_each_file_with_its_size(tiny):
    _, path = tiny
    result = push_release(path, "me/tiny", dry_run=True)
    assert result.sizes == {name: (path / name).stat().st_size for name in result.files}
    shown = CliRunner().invoke(main, ["release", "push", str(path), "--repo", "me/tiny", "--dry-run"],
                               env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    total = sum(result.sizes.values())
    assert f"would upload 7 files ({total / 1e6:.1f} MB)" in lines[0] or f"({total / 1e3:.1f} kB)" in lines[0]
    image = result.sizes["data/image_text/train-00000.parquet"]
    assert any(line.strip() == f"{image / 1e6:.1f} MB  data/image_text/train-00000.parquet" for line in lines)
