"""Genomes the tests share (plain data, as a user's genome JSON file holds them)."""

#: a small valid genome: three operations deep, both cells reading both inputs
GENOME = {
    "format": "nasgep-genome/1",
    "normal": {"cell": "cat add g1 g2 | g1 g2 g1 g2 g1",
               "genes": {"g1": "add | sep_3x3(h1) h2", "g2": "dw_3x3 | pw(h1) h2"}},
    "reduction": {"cell": "add g1 g2 g1 | g2 g1 g2 g1 g2",
                  "genes": {"g1": "add | sep_3x3(h1) dw_3x3(h2)", "g2": "pw | pw(h2) pw(h1)"}},
}
