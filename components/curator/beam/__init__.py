"""The Beam job: joins examples to forward records, applies the policy, writes curated splits."""
