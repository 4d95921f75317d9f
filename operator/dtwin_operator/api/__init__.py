"""dtwin.io/v1alpha1 resource models: the single source of truth for the CRDs and the operator."""
