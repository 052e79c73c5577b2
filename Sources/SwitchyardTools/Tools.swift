/// Tool execution: HTTP tools, built-ins, egress policy and tenant secrets.
public enum ToolsPlaceholder {}
