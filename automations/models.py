# Trigger, action and run models arrive with the automations issue.
