"""The cost estimate (``cost.json``, the tree printout, ``mleks diff``) and the price table behind it."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path

import pytest

from mleks import cli
from mleks.catalogs.gpu import catalog
from mleks.catalogs.prices import prices, table_from
from mleks.review.cost import estimate, summary_lines, total_text
from mleks.testing.render import plan_document
from stacks import offline
from stacks import prices as regenerate
from tests.checks import stack_file

FIXTURE = Path(__file__).parent / "fixtures" / "price_list"
EXAMPLE_REGIONS = {stack: stack_file(stack)["aws:region"] for stack in ("unified", "dedicated")}


def _gp3(gib: float, iops: int = 3000, mibps: int = 125, *, gb: float = 0.08, per_iops: float = 0.005, per_mibps: float = 0.04) -> float:
    """One gp3 volume's hourly price, computed independently of the estimator (EBS pricing: 3,000 IOPS and 125 MiB/s free)."""
    return (gib * gb + max(0, iops - 3000) * per_iops + max(0, mibps - 125) * per_mibps) / 730


# -- the price table ------------------------------------------------------------------------------


@pytest.mark.parametrize("region", sorted(set(EXAMPLE_REGIONS.values())))
def test_every_gpu_catalog_type_is_priced_or_listed_as_unpriced_in_the_example_regions(region: str):
    entry = prices().regions[region]
    priced, unpriced = set(entry["ec2"]), set(entry["unpriced"])
    assert not priced & unpriced
    assert set(catalog()) <= priced | unpriced
    assert len(priced & set(catalog())) >= 35, "most of the catalog has a price in the example regions"
    for item in ("natGatewayHour", "publicIpv4Hour"):
        assert entry[item]["usd"] > 0
    assert {"gp3GbMonth", "gp3IopsMonth", "gp3MibpsMonth", "gp2GbMonth"} <= entry["ebs"].keys()
    assert entry["eksClusterHour"]["standard"]["usd"] == 0.10 and entry["eksClusterHour"]["extended"]["usd"] == 0.60


def test_every_price_names_a_source_the_table_describes():
    table = prices()
    sources = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "usd" in node:
                sources.add(node["src"])
                assert isinstance(node["usd"], float | int) and node["usd"] > 0
            else:
                for v in node.values():
                    walk(v)

    walk(table.regions)
    assert sources <= table.sources.keys() and sources
    assert datetime.date.fromisoformat(table.retrieved)


def test_the_example_stacks_types_are_offered_in_their_regions():
    """A type with no price in a region is usually one the region does not offer: the examples must not use one."""
    for stack, region in EXAMPLE_REGIONS.items():
        cfg = stack_file(stack)
        types = {t for g in cfg["mleks:nodeGroups"].values() for t in g.get("instanceTypes", [])}
        types |= set(cfg["mleks:cluster"]["systemNodes"]["instanceTypes"])
        assert not {t for t in types if prices().instance_hour(region, t) is None}, stack


# -- regeneration from the AWS Price List offer files ---------------------------------------------


def test_regeneration_reads_the_offer_files_and_keeps_only_linux_on_demand_shared_rows():
    doc = regenerate.build(["us-west-2"], regenerate.from_folder(FIXTURE), {"g6e.12xlarge", "m7i.large", "p5.48xlarge"}, datetime.date(2026, 12, 1))
    region = doc["regions"]["us-west-2"]
    # The fixture's Windows, dedicated, reserved, BYOL, SQL and capacity-reservation rows all carry other prices.
    assert region["ec2"] == {"g6e.12xlarge": {"usd": 10.49264, "src": "price-list"}, "m7i.large": {"usd": 0.1008, "src": "price-list"}}
    assert region["natGatewayHour"]["usd"] == 0.045 and region["publicIpv4Hour"]["usd"] == 0.005
    ebs = {k: v["usd"] for k, v in region["ebs"].items()}
    assert ebs == {"gp3GbMonth": 0.08, "gp2GbMonth": 0.10, "gp3IopsMonth": 0.005, "gp3MibpsMonth": 0.04}
    assert {k: v["usd"] for k, v in region["eksClusterHour"].items()} == {"standard": 0.10, "extended": 0.60}
    assert "p5.48xlarge" in region["unpriced"] and "g6e.12xlarge" not in region["unpriced"]
    assert set(region["unpriced"]) == set(catalog()) - {"g6e.12xlarge"}
    assert "2026-11-20T18:20:46Z" in doc["sources"]["price-list"] and doc["retrieved"] == "2026-12-01"


def test_a_regenerated_table_prices_a_stack_like_the_shipped_one(rendered: dict[str, offline.RenderResult]):
    stack = rendered["unified"]  # the fixture is us-west-2, this stack's region
    doc = regenerate.build(["us-west-2"], regenerate.from_folder(FIXTURE), {"g6e.12xlarge", "m7i.large"}, datetime.date(2026, 12, 1))
    fresh, shipped = estimate(plan_document(stack), table=table_from(doc)), estimate(plan_document(stack))
    by_key = {(i.kind, i.name): i for i in shipped.items}
    for item in fresh.items:
        if item.name in ("system", "train-g6e", "notebooks/research home") or item.kind in ("control-plane", "nat-gateway", "public-ipv4"):
            same = by_key[(item.kind, item.name)]
            assert (item.idle, item.max) == pytest.approx((same.idle, same.max)), item.name
    # Types the fixture does not price are unknown, not zero.
    assert {i.name for i in fresh.unknown} >= {"inference-spot", "inference-ondemand"}


def test_the_regeneration_script_writes_the_table(tmp_path: Path):
    out = tmp_path / "prices.json"
    assert regenerate.main(["--regions", "us-west-2", "--offers-dir", str(FIXTURE), "--out", str(out)]) == 0
    table = table_from(json.loads(out.read_text()))
    assert table.instance_hour("us-west-2", "g6e.12xlarge").usd == 10.49264  # type: ignore[union-attr]
    # FSx for Lustre SSD storage by deployment type and tier; HDD, backups and other file systems are not storage we price.
    assert table.regions["us-west-2"]["fsxLustreGbMonth"] == {
        "PERSISTENT_1-50": {"usd": 0.3, "src": "price-list"},
        "PERSISTENT_2-125": {"usd": 0.1, "src": "price-list"},
        "PERSISTENT_2-250": {"usd": 0.2, "src": "price-list"},
        "SCRATCH_2-0": {"usd": 0.09, "src": "price-list"},
    }


def test_a_regenerated_table_prices_the_unified_dataset(rendered: dict[str, offline.RenderResult], tmp_path: Path):
    out = tmp_path / "prices.json"
    assert regenerate.main(["--regions", "us-west-2", "--offers-dir", str(FIXTURE), "--out", str(out)]) == 0
    est = estimate(plan_document(rendered["unified"]), table=table_from(json.loads(out.read_text())))
    [fsx] = [i for i in est.items if i.kind == "file-system"]
    # 1,200 GiB of PERSISTENT_2 at 250 MB/s/TiB, at the fixture's $0.20 per GB-month.
    assert (fsx.idle, fsx.max) == pytest.approx((1200 * 0.2 / 730, 1200 * 0.2 / 730))
    assert fsx.outlives == "retained on delete"


def test_a_file_that_is_not_an_offer_file_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="not an AWS Price List CSV offer file"):
        regenerate.rows(["a,b\n", "c,d\n"])


# -- the estimate ---------------------------------------------------------------------------------


def test_the_unified_stack_costs_what_its_groups_and_network_add_up_to(rendered: dict[str, offline.RenderResult]):
    est = estimate(plan_document(rendered["unified"]))
    items = {(i.kind, i.name): i for i in est.items}
    system = 0.1008 + _gp3(50)
    g6e = 10.49264 + _gp3(300, 6000, 1000)  # parallel pull raises the default throughput to 1000 MiB/s
    spot = 2.24208 + _gp3(200, 6000, 500)  # the dearer of g6e.xlarge and g6e.2xlarge, at on-demand
    ondemand = 1.861 + _gp3(200, 6000, 500)
    expected = {
        ("control-plane", "ml-unified"): (0.10, 0.10),
        ("node-group", "system"): (2 * system, 4 * system),
        ("node-group", "train-g6e"): (0.0, 4 * g6e),
        ("node-group", "inference-spot"): (0.0, 6 * spot),
        ("node-group", "inference-ondemand"): (0.0, 2 * ondemand),
        ("nat-gateway", "ml-unified-vpc-nat-1"): (0.045, 0.045),
        ("public-ipv4", "ml-unified-vpc-nat-1"): (0.005, 0.005),
        ("volume", "notebooks/research home"): (_gp3(100), _gp3(100)),
    }
    for key, figures in expected.items():
        assert (items[key].idle, items[key].max) == pytest.approx(figures), key
    # The Capacity Block group is paid when the block is bought, outside the stack: unknown, never guessed.
    p5 = items[("node-group", "train-p5")]
    assert p5.idle == 0.0 and p5.max is None and "Capacity Block" in p5.detail
    # The dataset's FSx file system: the table has no FSx prices, so it is unknown in both totals.
    fsx = items[("file-system", "tokens")]
    assert fsx.idle is None and fsx.max is None and "no FSx for Lustre price for PERSISTENT_2 at 250 MB/s/TiB in us-west-2" in fsx.detail
    assert set(items) == set(expected) | {("node-group", "train-p5"), ("file-system", "tokens")}
    assert est.idle == pytest.approx(sum(f[0] for f in expected.values()))
    assert est.max == pytest.approx(sum(f[1] for f in expected.values()))
    doc = est.document()
    assert not doc["idle"]["complete"] and not doc["max"]["complete"]
    assert sorted(doc["unknown"]) == sorted([f"node-group train-p5: {p5.detail}", f"file-system tokens: {fsx.detail}"])


def test_every_node_group_of_both_stacks_is_priced_per_node_and_counted_once(stack: offline.RenderResult):
    plan = plan_document(stack)
    est = estimate(plan)
    groups = [r["urn"] for r in plan["resources"] if r["type"] == "aws:eks/nodeGroup:NodeGroup"]
    assert sorted(i.urn for i in est.items if i.kind == "node-group") == sorted(groups)
    clusters = [r for r in plan["resources"] if r["type"] == "eks:index:Cluster"]
    assert len([i for i in est.items if i.kind == "control-plane"]) == len(clusters)
    assert {s.name for s in est.sections} == {c["inputs"]["name"] for c in clusters} | {"network"}


def test_a_spot_discount_prices_spot_groups_below_on_demand(rendered: dict[str, offline.RenderResult]):
    plain = {i.name: i for i in estimate(plan_document(rendered["unified"])).items}
    cheap = {i.name: i for i in estimate(plan_document(rendered["unified"]), spot_discount=0.6).items}
    assert cheap["inference-spot"].max == pytest.approx(6 * (2.24208 * 0.4 + _gp3(200, 6000, 500)))
    assert cheap["inference-ondemand"].max == plain["inference-ondemand"].max
    assert "spot varies" in plain["inference-spot"].detail and "60% below on-demand" in cheap["inference-spot"].detail
    with pytest.raises(ValueError, match=r"spot discount 1\.5"):
        estimate(plan_document(rendered["unified"]), spot_discount=1.5)


def test_an_unpriced_type_is_unknown_and_the_totals_say_so(rendered: dict[str, offline.RenderResult]):
    plan = copy.deepcopy(plan_document(rendered["unified"]))
    plan["region"] = "eu-west-1"  # no g6e there, in the table
    est = estimate(plan)
    g6e = next(i for i in est.items if i.name == "train-g6e")
    assert g6e.max is None and "no on-demand price for g6e.12xlarge in eu-west-1" in g6e.detail
    assert "+ unknown" in summary_lines(est)[0]
    plan["region"] = "xx-nowhere-1"
    assert all(i.max is None for i in estimate(plan).items if i.kind != "node-group" or i.name == "system")


def test_a_cluster_past_standard_support_pays_the_extended_rate(rendered: dict[str, offline.RenderResult]):
    plan = copy.deepcopy(plan_document(rendered["unified"]))
    [cluster] = [r for r in plan["resources"] if r["type"] == "eks:index:Cluster"]
    cluster["inputs"]["version"] = "1.32"  # standard support ended 2026-03-23, before the table's date
    [item] = [i for i in estimate(plan).items if i.kind == "control-plane"]
    assert item.max == 0.60 and "extended support" in item.detail


def test_render_writes_cost_json_and_prints_the_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    root = Path(__file__).resolve().parent.parent
    assert cli.main(["render", str(root), "--stack", "unified", "--out", str(tmp_path), "--spot-discount", "60%"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "unified" / "cost.json").read_text())
    assert doc["pricing"] == "on-demand list prices, spot at 60% off" and doc["region"] == "us-west-2"
    assert f"idle ${doc['idle']['usd']:.4f}" in printed and "node-group train-g6e: idle $0.0000, max $42.38" in printed
    assert set(doc["sections"]) == {"ml-unified", "network"} and doc["excludes"]
    assert set(doc["sources"]) == {"aws-pages", "vantage"}, "cost.json names the sources of the prices it used"
    assert cli.main(["render", str(root), "--stack", "unified", "--out", str(tmp_path), "--quiet"]) == 0
    quiet = capsys.readouterr().out
    assert "cost per hour (us-west-2" in quiet and "node-group train-g6e" not in quiet


def test_a_bad_spot_discount_is_refused_naming_the_option(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        cli.main(["render", "--spot-discount", "120%"])
    assert "--spot-discount: '120%' is out of range; accepted: 0 to below 1" in capsys.readouterr().err


def test_a_bottlerocket_group_pays_for_its_os_and_its_data_volume():
    cfg = stack_file("unified")
    cfg["mleks:nodeGroups"]["train-g6e"]["amiFamily"] = "bottlerocket"
    [item] = [i for i in estimate(plan_document(offline.run("unified", config=cfg))).items if i.name == "train-g6e"]
    # Bottlerocket's small OS volume plus the data volume that holds the images (300 GiB, 1000 MiB/s for parallel pull).
    os_volume = _gp3(8)  # BOTTLEROCKET_OS_VOLUME_GIB
    assert item.max == pytest.approx(4 * (10.49264 + os_volume + _gp3(300, 6000, 1000)))
    assert "volumes 8 GiB gp3 + 300 GiB gp3" in item.detail


def _readme_price_regions() -> dict[str, list[str]]:
    """The README's table of how complete each region's prices are: its row title -> regions."""
    text = (Path(__file__).parent.parent / "README.md").read_text()
    table = text[text.index("| regions | what the shipped table prices |") :].split("\n\n")[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    return {what.strip(): [r.strip() for r in regions.split(",")] for regions, what in rows}


def test_the_readme_says_which_regions_are_fully_priced_and_what_the_others_lack():
    table = prices()
    rows = _readme_price_regions()
    full = next(v for k, v in rows.items() if k.startswith("every kind of item the example stacks use but FSx for Lustre"))
    partial = next(v for k, v in rows.items() if k.startswith("instances"))
    ebs = ("gp3GbMonth", "gp3IopsMonth", "gp3MibpsMonth", "gp2GbMonth")
    for region in full + partial:
        assert table.eks_cluster_hour(region, "standard") and table.public_ipv4_hour(region), region
        assert all(table.instance_hour(region, t) for t in ("m6i.large", "m7i.large", "m7i.xlarge")), region
        assert set(table.regions[region]["unpriced"]) | set(table.regions[region]["ec2"]) >= set(catalog()), region
        assert table.fsx_lustre_month(region, "PERSISTENT_2", 250) is None, "the README says no region has FSx prices"
    for region in full:
        assert table.nat_gateway_hour(region) and all(table.ebs_month(region, item) for item in ebs), region  # type: ignore[arg-type]
    for region in partial:
        assert table.nat_gateway_hour(region) is None, region
        assert [i for i in ebs if table.ebs_month(region, i)] == (["gp3GbMonth"] if region == "us-east-2" else []), region  # type: ignore[arg-type]


def test_a_missing_volume_price_leaves_the_instances_in_the_total(rendered: dict[str, offline.RenderResult]):
    plan = plan_document(rendered["unified"])
    doc = json.loads((Path(__file__).parent.parent / "components/mleks/catalogs/data/prices.json").read_text())
    del doc["regions"]["us-west-2"]["ebs"]
    est = estimate(plan, table=table_from(doc))
    g6e = next(i for i in est.items if i.name == "train-g6e")
    assert g6e.max == pytest.approx(4 * 10.49264) and g6e.missing is not None and "no EBS price" in g6e.missing
    assert total_text(est, "max").endswith("+ unknown")
    unpriced = {(u["name"], u["part"]) for u in est.document()["unpriced"]}
    assert ("train-g6e", "left out of the figures") in unpriced and ("tokens", "all") in unpriced
