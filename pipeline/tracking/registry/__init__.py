"""The served MLflow model, registry versions and aliases."""
