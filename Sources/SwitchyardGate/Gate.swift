/// The gate of the MoE runtime: decides, per model step, which expert runs it.
public enum GatePlaceholder {}
