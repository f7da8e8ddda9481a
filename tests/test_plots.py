"""Table formatting for the book."""

import numpy as np
import pandas as pd

from dmtnn import plots


def test_with_intervals_folds_bounds_into_one_cell():
    table = pd.DataFrame({"network": ["a", "b", "c"], "test": [0.7, 0.5, np.nan],
                          "test low": [0.61, np.nan, np.nan], "test high": [0.78, np.nan, np.nan],
                          "images": [20.0, 8.0, 3.0]})
    out = plots.with_intervals(table, formats={"images": "{:.0f}"})
    assert list(out.data.columns) == ["network", "test", "images"]
    assert out.data["test"].tolist() == ["0.700 [0.61, 0.78]", "0.500", "–"]
    html = out.to_html()
    assert "0.700 [0.61, 0.78]" in html and ">20<" in html
    assert plots.styled(table).to_html() == plots.styled(table).to_html()  # stable ids
