"""The project's own tests (python3 -m unittest)."""

import unittest

from shop import total


class TotalTest(unittest.TestCase):
    def test_sums_prices(self) -> None:
        self.assertEqual(total([1.10, 2.20]), 3.3)


if __name__ == "__main__":
    unittest.main()
