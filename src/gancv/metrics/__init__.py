"""Evaluation metrics and the scorers behind them."""
