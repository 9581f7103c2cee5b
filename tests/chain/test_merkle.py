"""Reward trees: identical roots and proofs to OpenZeppelin's JS StandardMerkleTree."""

from __future__ import annotations

import json
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.merkle import (
    RewardEntry,
    RewardTree,
    SlashEntry,
    SlashTree,
    leaf_hash,
    slash_leaf_hash,
    verify,
)
from loraledger.errors import ConfigError
from loraledger.paths import REPO_ROOT

JS = """
const { StandardMerkleTree } = require(process.argv[1] + "/@openzeppelin/merkle-tree");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const values = input.entries.map(([node, amount]) => [input.task, input.round, node, amount]);
const tree = StandardMerkleTree.of(values, ["uint256", "uint32", "address", "uint256"]);
const proofs = {};
for (const [i, v] of tree.entries()) proofs[v[2]] = tree.getProof(i);
console.log(JSON.stringify({ root: tree.root, proofs }));
"""


def _js_tree(task: int, round_: int, entries: list[RewardEntry]) -> dict[str, object]:
    payload = json.dumps(
        {
            "task": str(task),
            "round": str(round_),
            "entries": [[e.node, str(e.amount)] for e in entries],
        }
    )
    out = subprocess.run(
        ["node", "-e", JS, str(REPO_ROOT / "node_modules")],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


SLASH_JS = """
const modules = process.argv[1];
const { StandardMerkleTree } = require(modules + "/@openzeppelin/merkle-tree");
const { keccak256 } = require(modules + "/ethereum-cryptography/keccak");
const { utf8ToBytes, bytesToHex } = require(modules + "/ethereum-cryptography/utils");
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const values = input.entries.map(([node, amount, reason, cid]) => [
  input.task, input.round, node, amount, reason, "0x" + bytesToHex(keccak256(utf8ToBytes(cid))),
]);
const types = ["uint256", "uint32", "address", "uint256", "uint16", "bytes32"];
const tree = StandardMerkleTree.of(values, types);
const proofs = {};
for (const [i, v] of tree.entries()) proofs[v[2]] = tree.getProof(i);
console.log(JSON.stringify({ root: tree.root, proofs }));
"""


def _js_slash_tree(task: int, round_: int, entries: list[SlashEntry]) -> dict[str, object]:
    payload = json.dumps(
        {
            "task": str(task),
            "round": str(round_),
            "entries": [[e.node, str(e.amount), e.reason, e.evidence_cid] for e in entries],
        }
    )
    out = subprocess.run(
        ["node", "-e", SLASH_JS, str(REPO_ROOT / "node_modules")],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _addresses(n: int) -> list[str]:
    return [f"0x{(i + 1) * 7919:040x}" for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_root_and_proofs_equal_openzeppelin_js(n: int) -> None:
    entries = [RewardEntry(a, (i + 1) * 10**18) for i, a in enumerate(_addresses(n))]
    tree = RewardTree(4, 2, entries)
    js = _js_tree(4, 2, entries)
    assert "0x" + tree.root.hex() == js["root"]
    for entry in tree.entries:
        assert ["0x" + p.hex() for p in tree.proof(entry.node)] == js["proofs"][entry.node.lower()]


@settings(max_examples=40, deadline=None)
@given(amounts=st.lists(st.integers(min_value=1, max_value=10**30), min_size=1, max_size=40))
def test_every_proof_verifies_and_proof_length_is_logarithmic(amounts: list[int]) -> None:
    nodes = _addresses(len(amounts))
    tree = RewardTree(1, 1, [RewardEntry(n, a) for n, a in zip(nodes, amounts, strict=True)])
    for node, amount in zip(nodes, amounts, strict=True):
        proof = tree.proof(node)
        assert verify(tree.root, leaf_hash(1, 1, node, amount), proof)
        assert not verify(tree.root, leaf_hash(1, 1, node, amount + 1), proof)
        assert not verify(tree.root, leaf_hash(1, 2, node, amount), proof)
        assert len(proof) <= max(1, (len(amounts) - 1).bit_length())
    assert tree.total == sum(amounts)


def test_bad_tables_are_refused() -> None:
    a = _addresses(1)[0]
    with pytest.raises(ConfigError, match="at least one entry"):
        RewardTree(1, 1, [])
    with pytest.raises(ConfigError, match="each node once"):
        RewardTree(1, 1, [RewardEntry(a, 1), RewardEntry(a.upper().replace("0X", "0x"), 2)])
    with pytest.raises(ConfigError, match="must be positive"):
        RewardTree(1, 1, [RewardEntry(a, 0)])
    with pytest.raises(ConfigError, match="no entry"):
        RewardTree(1, 1, [RewardEntry(a, 1)]).proof(_addresses(2)[1])


@pytest.mark.parametrize("n", [1, 2, 5])
def test_slash_tree_root_and_proofs_equal_openzeppelin_js(n: int) -> None:
    entries = [
        SlashEntry(a, (i + 1) * 10**17, i % 4, f"bafy-report-{i}")
        for i, a in enumerate(_addresses(n))
    ]
    tree = SlashTree(9, 3, entries)
    js = _js_slash_tree(9, 3, entries)
    assert "0x" + tree.root.hex() == js["root"]
    for entry in tree.entries:
        assert ["0x" + p.hex() for p in tree.proof(entry)] == js["proofs"][entry.node.lower()]
        assert tree.proof(entry.node) == tree.proof(entry)
        assert verify(tree.root, slash_leaf_hash(9, 3, entry), tree.proof(entry))


def test_slash_leaves_bind_every_field() -> None:
    entry = SlashEntry(_addresses(1)[0], 5, 2, "bafy-evidence")
    leaf = slash_leaf_hash(1, 1, entry)
    changed = [
        slash_leaf_hash(2, 1, entry),
        slash_leaf_hash(1, 2, entry),
        slash_leaf_hash(1, 1, SlashEntry(_addresses(2)[1], 5, 2, "bafy-evidence")),
        slash_leaf_hash(1, 1, SlashEntry(entry.node, 6, 2, "bafy-evidence")),
        slash_leaf_hash(1, 1, SlashEntry(entry.node, 5, 3, "bafy-evidence")),
        slash_leaf_hash(1, 1, SlashEntry(entry.node, 5, 2, "bafy-other")),
    ]
    assert leaf not in changed and len(set(changed)) == len(changed)


def test_bad_slash_tables_are_refused() -> None:
    a = _addresses(1)[0]
    with pytest.raises(ConfigError, match="at least one entry"):
        SlashTree(1, 1, [])
    with pytest.raises(ConfigError, match="each node once"):
        SlashTree(1, 1, [SlashEntry(a, 1, 1, "x"), SlashEntry(a, 2, 1, "y")])
    with pytest.raises(ConfigError, match="must be positive"):
        SlashTree(1, 1, [SlashEntry(a, 0, 1, "x")])
    with pytest.raises(ConfigError, match="no entry"):
        SlashTree(1, 1, [SlashEntry(a, 1, 1, "x")]).proof(_addresses(2)[1])
