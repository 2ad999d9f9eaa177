"""Every page that quotes a results file, and the builders of its blocks (bench/blocks.py):
``python -m bench readme`` writes them all, and tests/unit/test_readme.py checks them."""

from bench import readme
from bench.blocks import Page
from bench.docblocks import DOC_PAGES
from bench.topology import ROOT

PAGES = (
    Page(readme.README, readme.BLOCKS),
    *(Page(ROOT / path, blocks) for path, blocks in DOC_PAGES.items()),
)
