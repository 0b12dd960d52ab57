"""The sweep report's own statistics, on configurations built here (no sweep is run)."""


def test_the_report_says_how_the_objective_ranks_against_held_out_numbers():
    from emoref.reports import objective_check
    from emoref.sweep import Configuration

    def config(trial, dev, test_ua):
        return Configuration(trial, {}, {s: {"dev": dev + d, "test_ua": test_ua + d}
                                         for s, d in enumerate((-0.01, 0.0, 0.01))})
    # Ranked best dev first (read_sweep's order); here dev and D3 run opposite ways.
    opposite = [config("a", 0.8, 0.5), config("b", 0.7, 0.6), config("c", 0.6, 0.7),
                config("d", 0.5, 0.8)]
    line = objective_check(opposite, 3, "D3")
    assert "4 configurations" in line and "rho -1.00" in line
    assert "the best by dev UA has D3 UA 50.00, the median configuration 65.00" in line
    same = [config("a", 0.8, 0.8), config("b", 0.7, 0.7), config("c", 0.6, 0.6)]
    assert "rho +1.00" in objective_check(same, 3, "D3")
    # Configurations short of their seeds do not count; fewer than 3 give no statistic.
    short = Configuration("e", {}, {0: {"dev": 0.9, "test_ua": 0.9}})
    assert "fewer than 3" in objective_check([short, *same[:2]], 3, "D3")
