"""Networks from genomes: the operation table, compiled cells, whole networks, parameter
counts derived by hand, seeding, module names and weight-inheritance units."""
from __future__ import annotations

import copy
import math
import pickle
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nasgep import space
from nasgep.gep import Chromosome, OperatorRates, karva, random_chromosome
from nasgep.nn import (
    OPS,
    BatchNorm2d,
    Cell,
    Conv2d,
    FactorizedReduce,
    Macro,
    Network,
    build_network,
    count_network_parameters,
    count_parameters,
    drop_path,
)
from nasgep.nn.network import live_cells
from nasgep.space import GENE_ALPHABETS, OPERATIONS, CellGenome, Genome, GenomeError, cell_alphabet

TINY = dict(channels=4, cells_per_stage=1, num_classes=10)
POOL_IDS = tuple(f"g{i}" for i in range(8))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and immune to other processes on the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_cell(rng: random.Random, pool: str) -> CellGenome:
    genes = {g: random_chromosome(rng, 1, GENE_ALPHABETS[pool]) for g in POOL_IDS}
    cell = random_chromosome(rng, 4, cell_alphabet(POOL_IDS), OperatorRates(head_functions_only=True))
    return CellGenome(pool, cell, genes).validate(pool)


def random_genome(seed: int) -> Genome:
    rng = random.Random(seed)
    return Genome(random_cell(rng, "normal"), random_cell(rng, "reduction"))


def genome(normal_cell: str, normal_genes: dict[str, str], reduction_cell: str,
           reduction_genes: dict[str, str]) -> Genome:
    return Genome.from_dict({"normal": {"cell": normal_cell, "genes": normal_genes},
                             "reduction": {"cell": reduction_cell, "genes": reduction_genes}})


def cell(pool: str, text: str, genes: dict[str, str]) -> CellGenome:
    return CellGenome.from_dict(pool, {"cell": text, "genes": genes})


#: a small hand-written genome used by several tests
HAND = genome("add cat g3 | g1 g2 g1 g1", {"g1": "add | sep_3x3(h1) h2",
                                           "g2": "sep_3x3 | dw_5x5(h1) h2",
                                           "g3": "h1 | h1 h1"},
              "cat | g1 g2", {"g1": "pw(h1) | pw(h1) pw(h1)",
                                       "g2": "isep_1x7 | dw_3x5(h2) pw(h1)"})


# --- the operation table ------------------------------------------------------------------

def test_op_table_covers_the_19_operations_in_order():
    assert tuple(OPS) == OPERATIONS and len(OPS) == 19


@pytest.mark.parametrize("name", OPERATIONS)
def test_each_op_is_relu_conv_bn_and_keeps_channels(name):
    c = 6
    for stride, size, expected in ((1, 9, 9), (2, 9, 5), (2, 8, 4)):  # ceil(H / 2) when strided
        block = OPS[name](c, stride)
        children = list(block.children())
        assert isinstance(children[0], nn.ReLU) and isinstance(children[-1], nn.BatchNorm2d)
        convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
        assert all(conv.bias is None for conv in convs)
        assert sum(conv.stride == (2, 2) for conv in convs) == (stride == 2)
        out = block(torch.randn(2, c, size, size))
        assert out.shape == (2, c, expected, expected)


@pytest.mark.parametrize("name, params", [
    # c = 6, BN has 2c = 12 parameters
    ("pw", 6 * 6 + 12),
    ("dw_3x3", 6 * 9 + 12),
    ("dw_1x7", 6 * 7 + 12),
    ("sep_5x3", 6 * 6 + 6 * 15 + 12),
    ("isep_7x1", 6 * 7 + 6 * 6 + 12),
])
def test_op_parameter_counts(name, params):
    assert count_parameters(OPS[name](6, 1)) == params


def test_separable_orders_and_non_square_padding():
    sep = OPS["sep_1x7"](4, 2)
    isep = OPS["isep_1x7"](4, 2)
    assert [n for n, _ in sep.named_children()] == ["relu", "pw", "dw", "bn"]
    assert [n for n, _ in isep.named_children()] == ["relu", "dw", "pw", "bn"]
    assert sep.dw.padding == (0, 3) and sep.dw.kernel_size == (1, 7) and sep.dw.groups == 4
    assert sep.dw.stride == (2, 2) and sep.pw.stride == (1, 1)  # the stride sits on the dw conv
    assert OPS["dw_7x1"](4, 1).dw.padding == (3, 0)


def test_light_conv_and_bn_behave_like_torch_ones():
    conv = Conv2d(4, 6, (3, 5), stride=2)
    ref = nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), bias=False)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 9, 9)
    assert torch.equal(conv(x), ref(x)) and repr(conv)[len("Conv2d"):] == repr(ref)[len("Conv2d"):]
    bn, ref_bn = BatchNorm2d(4), nn.BatchNorm2d(4)
    assert bn.state_dict().keys() == ref_bn.state_dict().keys()
    for mode in ("train", "eval"):
        getattr(bn, mode)(), getattr(ref_bn, mode)()
        assert torch.allclose(bn(x), ref_bn(x))
    for key, value in bn.state_dict().items():
        assert torch.equal(value, ref_bn.state_dict()[key]), key


def test_factorized_reduce_halves_any_resolution():
    fr = FactorizedReduce(4, 8)
    for size in (8, 7):
        assert fr(torch.randn(2, 4, size, size)).shape == (2, 8, math.ceil(size / 2), math.ceil(size / 2))
    assert count_parameters(fr) == 2 * (4 * 4) + 2 * 8


# --- cells: parameter counts derived by hand ----------------------------------------------

def test_normal_cell_parameters_by_hand():
    # cat(g1, g2) at C = 4, inputs of 4 channels
    c = cell("normal", "cat | g1 g2", {"g1": "add | sep_3x3(h1) h2",
                                                "g2": "sep_3x3 | dw_5x5(h1) h2"})
    pre = 4 * 4 + 2 * 4            # 1x1 block 4 -> 4 + BN: 24, once per input (h1, h2)
    sep_3x3 = 4 * 4 + 4 * 9 + 8    # pw 16 + dw 36 + BN 8 = 60
    dw_5x5 = 4 * 25 + 8            # 108
    final = 8 * 4 + 8              # cat is 8 wide: 1x1 block 8 -> 4 = 40
    expected = 2 * pre + sep_3x3 + (dw_5x5 + sep_3x3) + final
    assert expected == 316
    module = Cell(c, 4, 4, 4)
    assert count_parameters(module) == expected
    assert module(torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)).shape == (2, 4, 6, 6)


def test_add_of_different_widths_maps_the_wider_operand():
    # add(cat(g1, g2), g3): the cat (8 wide) is mapped to 4 before the add; no final block
    c = cell("normal", "add cat g3 | g1 g2 g1 g1", {"g1": "pw(h1) | h1 h1",
                                                    "g2": "dw_3x3(h2) | h1 h1",
                                                    "g3": "h1 | h1 h1"})
    module = Cell(c, 4, 4, 4)
    expected = 2 * (4 * 4 + 8) + (4 * 4 + 8) + (4 * 9 + 8) + (8 * 4 + 8)  # pre x2, pw, dw, match
    assert count_parameters(module) == expected == 156
    assert list(module.match) == ["n0"] and module.final is None


def test_reduction_cell_parameters_by_hand_and_strides():
    # C_prev = 4 -> C_cell = 8; pw(h1) and dw_3x5(h2) read inputs: stride 2
    c = cell("reduction", "add | g1 g2", {"g1": "pw(h1) | pw(h1) pw(h1)",
                                                   "g2": "isep_1x7 | dw_3x5(h2) pw(h1)"})
    module = Cell(c, 4, 4, 8)
    pre = 4 * 8 + 2 * 8                              # 48 per input
    pw = 8 * 8 + 16                                  # 80
    dw_3x5 = 8 * 15 + 16                             # 136
    isep_1x7 = 8 * 7 + 8 * 8 + 16                    # 136
    assert count_parameters(module) == 2 * pre + pw + dw_3x5 + isep_1x7 == 448
    strides = {name: m.stride for name, m in module.named_modules() if isinstance(m, nn.Conv2d)}
    assert strides["genes.g1_0.ops.0.pw"] == (2, 2)
    assert strides["genes.g2_0.ops.0.dw"] == (2, 2)        # dw_3x5(h2) reads an input
    assert strides["genes.g2_0.ops.1.dw"] == (1, 1)        # isep_1x7 reads dw_3x5's output
    assert strides["preprocess.h1.pw"] == (1, 1)
    assert module(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)


def test_h2_at_twice_the_resolution_goes_through_factorized_reduce():
    c = cell("normal", "add | g1 g2", {"g1": "pw(h1) | h1 h1", "g2": "pw(h2) | h1 h1"})
    module = Cell(c, 4, 8, 8, reduce_h2=True)
    assert isinstance(module.preprocess["h2"], FactorizedReduce)
    fr = 2 * (4 * 4) + 2 * 8                         # two 1x1 4 -> 4 + BN(8) = 48
    assert count_parameters(module) == fr + (8 * 8 + 16) + 2 * (8 * 8 + 16)
    assert module(torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)).shape == (2, 8, 4, 4)


def test_unused_input_gets_no_preprocessing():
    module = Cell(cell("normal", "g1 | g1 g1", {"g1": "pw(h1) | pw(h1) pw(h1)"}), 4, 4, 4)
    assert list(module.preprocess) == ["h1"]


def test_gene_used_twice_has_two_instances():
    module = Cell(cell("normal", "add | g1 g1", {"g1": "pw(h1) | h1 h1"}), 4, 4, 4)
    assert list(module.genes) == ["g1_0", "g1_1"]
    assert module.genes["g1_0"].ops[0].pw.weight is not module.genes["g1_1"].ops[0].pw.weight


def test_plan_is_flat_and_forward_does_not_touch_the_tree(monkeypatch):
    module = Cell(HAND.normal, 4, 4, 4).eval()
    kinds = [step.kind for step in module.plan]
    assert set(kinds) <= {"module", "add", "cat", "drop_path"}
    # every step reads slots written before it
    written = {0, 1}
    for step in module.plan:
        assert set(step.inputs) <= written
        written.add(step.output)
    # forward runs the compiled plan alone: with every way to decode a tree broken, the
    # cell computes the same output
    s0, s1 = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    before = module(s0, s1)

    def no_tree(*_args, **_kwargs):
        raise AssertionError("forward decoded a tree")
    for name in ("tree", "gene_tree", "used_only", "validate"):
        monkeypatch.setattr(CellGenome, name, no_tree)
    monkeypatch.setattr(karva, "decode", no_tree)
    monkeypatch.setattr(space, "decode", no_tree)
    assert torch.equal(module(s0, s1), before)


def test_reduction_gene_reading_a_raw_input_is_rejected():
    # the reduction alphabet has no raw inputs (they could not be added to strided tensors);
    # a genome assembled without validation is still refused, with the gene named
    bad = CellGenome("reduction", Chromosome.from_text("g1 | g1 g1"),
                     {"g1": Chromosome.from_text("h1 | h1 h1")})
    with pytest.raises(GenomeError, match="reduction.genes.g1"):
        Cell(bad, 4, 4, 8)
    missing = CellGenome("normal", Chromosome.from_text("g1 | g1 g1"), {})
    with pytest.raises(GenomeError, match="g1"):
        Cell(missing, 4, 4, 4)


# --- whole networks ------------------------------------------------------------------------

def test_network_parameters_by_hand():
    # every cell is one pw gene reading h1; C = 4, N = 1, 10 classes
    g = genome("g1 | g1 g1", {"g1": "pw(h1) | h1 h1"}, "g1 | g1 g1", {"g1": "pw(h1) | pw(h1) pw(h1)"})
    stem = 3 * 9 * 4 + 8                          # 3x3 conv 3 -> 4 + BN = 116

    def normal(w):                                # pre 1x1 w -> w + pw w -> w
        return 2 * (w * w + 2 * w)

    def reduction(w_in):                          # pre 1x1 w_in -> 2 w_in + pw (stride 2)
        w = 2 * w_in
        return (w_in * w + 2 * w) + (w * w + 2 * w)

    classifier = 2 * 16 + 16 * 10 + 10            # BN(16) + linear = 202
    expected = stem + normal(4) + reduction(4) + normal(8) + reduction(8) + normal(16) + classifier
    assert expected == 116 + 48 + 128 + 160 + 448 + 576 + 202 == 1678
    net = build_network(g, Macro(**TINY), seed=0)
    assert count_parameters(net) == expected
    assert count_network_parameters(g, Macro(**TINY)) == expected


def test_macro_architecture_and_logits_without_relu():
    net = build_network(HAND, Macro(channels=4, cells_per_stage=2, num_classes=7), seed=0)
    names = [n for n, m in net.named_modules() if isinstance(m, Cell)]
    assert names == ["stages.0.cells.0", "stages.0.cells.1", "stages.1.reduction", "stages.1.cells.0",
                     "stages.1.cells.1", "stages.2.reduction", "stages.2.cells.0", "stages.2.cells.1"]
    assert isinstance(net.stem.conv, nn.Conv2d) and net.stem.conv.out_channels == 4
    assert [type(m) for m in net.classifier.children()][-1] is nn.Linear
    out = net(torch.randn(8, 3, 16, 16))
    assert out.shape == (8, 7) and (out < 0).any()  # a ReLU on the logits would forbid this


def test_imagenet_stem():
    net = build_network(HAND, Macro(channels=8, cells_per_stage=1, num_classes=5, stem="imagenet"), seed=0)
    blocks = list(net.stem.children())
    assert [b.conv.out_channels for b in blocks] == [4, 8, 8]
    assert [hasattr(b, "relu") for b in blocks] == [False, True, True]
    assert all(b.conv.stride == (2, 2) for b in blocks)
    assert net.stem(torch.randn(1, 3, 64, 64)).shape == (1, 8, 8, 8)


def check_forward_backward(net: Network, size: int, stem_halvings: int) -> None:
    """Forward + backward. Every cell of stage s outputs C * 2^s channels at 1/2^s of the
    stem's resolution; seen from its h_{i-1}, a reduction cell halves the resolution and
    doubles the width, a normal cell keeps both. Every parameter gets a gradient."""
    seen = []
    hooks = [c.register_forward_hook(lambda m, args, out: seen.append((m, args[1], out.shape)))
             for c in net.cells]
    out = net(torch.randn(2, 3, size, size))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert len(seen) == len(net.cells)
    stem_size = size
    for _ in range(stem_halvings):
        stem_size = math.ceil(stem_size / 2)
    for module, h1, (_, c_out, h_out, w_out) in seen:
        s = module.place.stage
        side = stem_size
        for _ in range(s):
            side = math.ceil(side / 2)
        assert (c_out, h_out, w_out) == (net.macro.channels * 2**s, side, side)
        if h1 is None:  # h_{i-1} is a dead cell this one does not read
            continue
        _, c_in, h_in, w_in = h1.shape
        if module.reduction:
            assert (c_out, h_out, w_out) == (2 * c_in, math.ceil(h_in / 2), math.ceil(w_in / 2))
        else:
            assert (c_out, h_out, w_out) == (c_in, h_in, w_in)
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient for {missing[:5]}"


@settings(max_examples=120, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_random_genomes_cifar(seed):
    net = build_network(random_genome(seed), Macro(**TINY), seed=seed)
    check_forward_backward(net, 32, 0)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_random_genomes_imagenet(seed):
    net = build_network(random_genome(seed), Macro(**TINY, stem="imagenet"), seed=seed)
    check_forward_backward(net, 64, 3)


def test_dead_cells_are_not_built():
    # normal cells read only h_{i-2}: each normal cell skips its predecessor, so with N = 1
    # both reduction cells (each read only as an unused h_{i-1}) compute nothing the
    # classifier sees. The resolution schedule still holds: the normal cells of stages 1
    # and 2 bring their h_{i-2} down through factorised reductions.
    g = genome("g1 | g1 g1", {"g1": "pw(h2) | h1 h1"}, "g1 | g1 g1", {"g1": "pw(h1) | pw(h1) pw(h1)"})
    assert live_cells(g, 1) == [True, False, True, False, True]
    net = build_network(g, Macro(**TINY), seed=0)
    assert not hasattr(net.stages[1], "reduction") and not hasattr(net.stages[2], "reduction")
    assert isinstance(net.stages[1].cells["0"].preprocess["h2"], FactorizedReduce)
    check_forward_backward(net, 32, 0)
    stem, classifier = 116, 202
    normal0 = (4 * 4 + 8) + (4 * 4 + 8)                 # pre h2 4 -> 4, pw at width 4
    normal1 = (2 * (4 * 4) + 16) + (8 * 8 + 16)         # factorised 4 -> 8, pw at width 8
    normal2 = (2 * (8 * 8) + 32) + (16 * 16 + 32)       # factorised 8 -> 16, pw at width 16
    assert count_parameters(net) == stem + normal0 + normal1 + normal2 + classifier == 942


def test_drop_path():
    torch.manual_seed(0)
    x = torch.ones(4000, 1, 1, 1)
    y = drop_path(x, 0.25)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.03 and torch.allclose(y[y != 0], torch.tensor(1 / 0.75))
    net = build_network(HAND, Macro(**TINY), seed=0)
    x = torch.randn(4, 3, 16, 16)
    net.eval()
    before = net(x)
    net.set_drop_path(0.5)
    assert torch.equal(net(x), before)  # eval: no drop-path
    assert all(c.drop_path_rate == 0.5 for c in net.cells)
    net.train()
    torch.manual_seed(1)
    a = net(x)
    net.set_drop_path(0.0)
    torch.manual_seed(1)
    assert not torch.allclose(a, net(x))
    with pytest.raises(ValueError):
        net.set_drop_path(1.0)


def test_deep_copy_uses_its_own_weights():
    net = build_network(HAND, Macro(**TINY), seed=0).eval()
    twin = copy.deepcopy(net)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    assert torch.equal(twin(x), torch.zeros(2, 10)) and not torch.equal(net(x), torch.zeros(2, 10))
    restored = pickle.loads(pickle.dumps(net))
    assert torch.equal(restored(x), net(x))


# --- seeding, names, inheritance ------------------------------------------------------------

def test_same_genome_and_seed_give_the_same_weights_without_touching_the_global_rng():
    g = random_genome(7)
    state = torch.random.get_rng_state()
    a = build_network(g, Macro(**TINY), seed=3).state_dict()
    b = build_network(g, Macro(**TINY), seed=3).state_dict()
    count_network_parameters(g, Macro(**TINY))
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = build_network(g, Macro(**TINY), seed=4).state_dict()
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_module_names_are_stable_and_descriptive():
    a = build_network(HAND, Macro(**TINY), seed=0)
    b = build_network(HAND, Macro(**TINY), seed=1)
    assert list(a.state_dict()) == list(b.state_dict())
    names = set(a.state_dict())
    for name in ("stem.conv.weight",
                 "stages.0.cells.0.preprocess.h1.pw.weight",
                 "stages.0.cells.0.genes.g1_0.ops.0.dw.weight",      # sep_3x3(h1) of g1
                 "stages.0.cells.0.genes.g2_0.ops.1.pw.weight",      # sep_3x3 around dw_5x5
                 "stages.0.cells.0.match.n0.pw.weight",              # cat(g1, g2) mapped to C
                 "stages.1.cells.0.preprocess.h2.conv_1.weight",     # factorised reduction
                 "stages.2.reduction.genes.g2_0.ops.1.pw.weight",    # isep_1x7 of g2
                 "stages.2.reduction.final.pw.weight",               # cat(g1, g2) -> C
                 "classifier.linear.weight"):
        assert name in names, name


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1))
def test_inheritance_units_partition_the_network(seed):
    net = build_network(random_genome(seed), Macro(channels=4, cells_per_stage=2, num_classes=10))
    units = net.inheritance_units("cifar10")
    owned = [id(t) for unit in units.values() for t in (*unit.parameters(), *unit.buffers())]
    everything = [id(t) for t in (*net.parameters(), *net.buffers())]
    assert len(owned) == len(set(owned)) == len(everything) and set(owned) == set(everything)
    assert all(unit.state_dict() for unit in units.values())


def test_inheritance_keys():
    units = build_network(HAND, Macro(**TINY), seed=0).inheritance_units("cifar10")
    for key in ("stem/cifar10/w4/cifar/in3",
                "classifier/cifar10/w16/n10",
                "gene/normal/g1/occ0/stage0/rep0/w4",
                "gene/normal/g2/occ0/stage1/rep0/w8",
                "gene/reduction/g2/occ0/stage2/rep0/w16",
                "pre/normal/stage0/rep0/w4/in4/h1/conv1x1",
                "pre/normal/stage1/rep0/w8/in4/h2/factorized",
                "match/normal/stage0/rep0/w4/in8/atn0/cat-g1-g2",
                "final/reduction/stage1/rep0/w8/in16/cat-g1-g2"):
        assert key in units, key
    assert not any(k.startswith("gene/normal/g3/") for k in units)  # identity gene: no weights
    with pytest.raises(ValueError):
        build_network(HAND, Macro(**TINY)).inheritance_units("a/b")


def test_genomes_sharing_a_gene_share_its_keys_and_shapes():
    shared = "sep_3x3 | dw_5x5(h1) h2"
    a = genome("cat | g1 g2", {"g1": "add | sep_3x3(h1) h2", "g2": shared},
               "g1 | g1 g1", {"g1": "pw(h1) | pw(h1) pw(h1)"})
    b = genome("add | g2 g5", {"g2": shared, "g5": "pw(h2) | h1 h1"},
               "g1 | g1 g1", {"g1": "pw(h1) | pw(h1) pw(h1)"})
    ua = build_network(a, Macro(**TINY), seed=0).inheritance_units("cifar10")
    ub = build_network(b, Macro(**TINY), seed=1).inheritance_units("cifar10")
    common = set(ua) & set(ub)
    for key in ("gene/normal/g2/occ0/stage0/rep0/w4", "gene/reduction/g1/occ0/stage1/rep0/w8",
                "stem/cifar10/w4/cifar/in3", "classifier/cifar10/w16/n10",
                "pre/normal/stage0/rep0/w4/in4/h1/conv1x1"):
        assert key in common, key
    for key in common:  # equal keys mean loadable weights
        ub[key].load_state_dict(ua[key].state_dict())
    assert torch.equal(ub["gene/normal/g2/occ0/stage0/rep0/w4"].ops[0].dw.weight,
                       ua["gene/normal/g2/occ0/stage0/rep0/w4"].ops[0].dw.weight)
    wide = build_network(a, Macro(channels=8, cells_per_stage=1, num_classes=10)).inheritance_units("cifar10")
    assert "gene/normal/g2/occ0/stage0/rep0/w8" in wide and not set(wide) & {
        k for k in ua if k.startswith("gene/")}


def test_search_size_networks_are_of_the_search_limits_scale():
    """Sanity of the scale: at the paper's search size (C = 16, N = 3) random genomes build
    networks of the order of the 300k parameter limit, some below it and none absurdly far
    above (the search re-breeds those over it; a mistake in the width arithmetic would
    put every one far off)."""
    counts = [count_network_parameters(random_genome(s), Macro(channels=16, cells_per_stage=3, num_classes=10))
              for s in range(8)]
    assert all(30_000 < n < 3_000_000 for n in counts)
    assert any(n <= 300_000 for n in counts)
