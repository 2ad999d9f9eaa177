"""What a run writes: tables, plots and the results folder."""
