"""The model lifecycle on MLflow: train, register, champion/challenger, gate, promote, rollback, score."""
